"""Engines that run batch scoring somewhere other than this process."""
