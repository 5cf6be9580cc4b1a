"""Reject template answers that would produce a broken project, before any file is written.

Each rule prints one line naming the field and the rule, and the hook exits non-zero;
cookiecutter then removes the half-made output folder, so nothing is left behind.
"""

import keyword
import re
import sys

# Import names of every package in the generated project's requirements.lock, whichever its
# framework (and of its test tools): a package with one of these names would shadow the real
# library.
# tests/test_hooks.py checks that this list covers the lock file.
DEPENDENCY_IMPORTS = {
    "annotated_doc",
    "annotated_types",
    "anyio",
    "cachetools",
    "certifi",
    "cffi",
    "charset_normalizer",
    "click",
    "cloudpickle",
    "contourpy",
    "cryptography",
    "cycler",
    "dask",
    "databricks",
    "dateutil",
    "distributed",
    "docker",
    "dotenv",
    "fastapi",
    "filelock",
    "flatbuffers",
    "fontTools",
    "fsspec",
    "functorch",
    "git",
    "gitdb",
    "google",
    "grpc",
    "grpc_health",
    "h11",
    "httptools",
    "httpx",
    "idna",
    "importlib_metadata",
    "isympy",
    "jinja2",
    "joblib",
    "kiwisolver",
    "lazy_importer",
    "lightgbm",
    "locket",
    "markupsafe",
    "matplotlib",
    "ml_dtypes",
    "mlflow",
    "mpl_toolkits",
    "mpmath",
    "msgpack",
    "narwhals",
    "networkx",
    "numpy",
    "onnx",
    "onnx_ir",
    "onnxmltools",
    "onnxruntime",
    "onnxscript",
    "opentelemetry",
    "orjson",
    "packaging",
    "pandas",
    "partd",
    "pkg_resources",
    "prettytable",
    "prometheus_client",
    "psutil",
    "pyarrow",
    "pyasn1",
    "pyasn1_modules",
    "pycparser",
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "pylab",
    "pyparsing",
    "pytest",
    "requests",
    "safetensors",
    "scipy",
    "setuptools",
    "six",
    "skl2onnx",
    "sklearn",
    "skops",
    "smmap",
    "sortedcontainers",
    "sqlparse",
    "starlette",
    "sympy",
    "tblib",
    "threadpoolctl",
    "tlz",
    "toolz",
    "torch",
    "torchgen",
    "tornado",
    "tritonclient",
    "typing_extensions",
    "typing_inspection",
    "tzdata",
    "urllib3",
    "uvicorn",
    "uvloop",
    "wcwidth",
    "xgboost",
    "yaml",
    "zict",
    "zipp",
}

SLUG = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PACKAGE = re.compile(r"^[a-z][a-z0-9_]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# PEP 440 public versions, without epochs or local parts.
VERSION = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")


def problems(slug: str, package: str, email: str, version: str, texts: dict[str, str]) -> list[str]:
    found = []
    for field, text in texts.items():
        if '"' in text or "\\" in text:
            found.append(
                f"{field} {text!r}: must not contain double quotes or backslashes "
                "(it is written into Python, TOML and Dockerfile strings)."
            )
    if not SLUG.match(slug):
        found.append(
            f"project_slug {slug!r}: use lowercase letters, digits and single hyphens, "
            "starting with a letter (it names the folder and the image)."
        )
    if not PACKAGE.match(package) or not package.isidentifier():
        found.append(
            f"package_name {package!r}: use a lowercase Python identifier "
            "(letters, digits, underscores; starting with a letter)."
        )
    elif keyword.iskeyword(package) or keyword.issoftkeyword(package):
        found.append(f"package_name {package!r}: is a Python keyword; choose another name.")
    elif package in sys.stdlib_module_names:
        found.append(
            f"package_name {package!r}: would shadow the standard library module "
            f"{package!r}; choose another name."
        )
    elif package in DEPENDENCY_IMPORTS:
        found.append(
            f"package_name {package!r}: would shadow the dependency {package!r}; "
            "choose another name."
        )
    if not EMAIL.match(email):
        found.append(f"author_email {email!r}: is not an e-mail address (name@example.com).")
    if not VERSION.match(version):
        found.append(f"version {version!r}: is not a PEP 440 version such as 0.1.0 or 1.0rc1.")
    return found


def main() -> int:
    found = problems(
        slug={{ cookiecutter.project_slug | tojson }},
        package={{ cookiecutter.package_name | tojson }},
        email={{ cookiecutter.author_email | tojson }},
        version={{ cookiecutter.version | tojson }},
        texts={
            "project_name": {{ cookiecutter.project_name | tojson }},
            "description": {{ cookiecutter.description | tojson }},
            "author_name": {{ cookiecutter.author_name | tojson }},
        },
    )
    for line in found:
        print(f"ERROR: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
