"""Save the generated project's XGBoost model (a Booster written by `xgboost.train`) through
XGBClassifier, for MLServer's XGBoost runtime, and write its class names as JSON.

The runtime loads a file as an XGBRegressor unless the file says it is a classifier; as a
regressor it refuses `predict_proba`. Saving through XGBClassifier marks the file so and
leaves the trees as they are. Runs in the runtime's environment, which pins the project's
XGBoost.
"""

import json
import sys
from pathlib import Path

import xgboost

source, target, metadata, classes = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
model = xgboost.XGBClassifier()
model.load_model(source)
model.save_model(target)
# The probabilities' columns follow the project's classes, in metadata.json's order.
classes.write_text(json.dumps(json.loads(metadata.read_text())["classes"]))
print(f"saved {source} as an XGBClassifier to {target}, its classes to {classes}")
