"""One router per protocol; every router calls the same PredictionService."""
