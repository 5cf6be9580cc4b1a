"""Export the generated project's trained model (skops) as the joblib file the peers load,
and its classes (the column order of MLServer's predict_proba output) as JSON.

Runs inside a peer's virtual environment, which pins the same scikit-learn version, so every
server answers with the very same fitted pipeline.
"""

import json
import sys
from pathlib import Path

import joblib
import skops.io

source, target, classes = sys.argv[1], sys.argv[2], Path(sys.argv[3])
model = skops.io.load(source, trusted=skops.io.get_untrusted_types(file=source))
joblib.dump(model, target)
classes.write_text(json.dumps([str(c) for c in model.classes_]))
print(f"exported {type(model).__name__} to {target}, its classes to {classes}")
