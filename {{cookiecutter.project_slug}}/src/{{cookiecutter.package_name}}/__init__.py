"""{{ cookiecutter.project_name }}: {{ cookiecutter.description }}"""

from .core.settings import PROJECT_VERSION as __version__

__all__ = ["__version__"]
