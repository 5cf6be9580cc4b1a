"""What every pipeline shares: the settings, the data schema and its errors, the model
artifact, its two runtimes and the framework's model module, the prediction core, the file
formats, the CPU count and log timestamps. It imports nothing of the project outside core/."""
