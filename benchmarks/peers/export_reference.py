"""Export the generated project's trained model (skops) as the joblib file the peers load.

Runs inside a peer's virtual environment, which pins the same scikit-learn version, so every
server answers with the very same fitted pipeline.
"""

import sys

import joblib
import skops.io

source, target = sys.argv[1], sys.argv[2]
model = skops.io.load(source, trusted=skops.io.get_untrusted_types(file=source))
joblib.dump(model, target)
print(f"exported {type(model).__name__} to {target}")
