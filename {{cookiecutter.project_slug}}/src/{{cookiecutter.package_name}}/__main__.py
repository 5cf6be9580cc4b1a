"""`python -m {{ cookiecutter.package_name }}`: the image's entry point."""

import sys

from .cli import main

sys.exit(main())
