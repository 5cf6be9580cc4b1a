"""The core that every pipeline shares: settings, the data schema, the model artifact and its
runtimes, the prediction core. It imports nothing of the project outside core/."""
