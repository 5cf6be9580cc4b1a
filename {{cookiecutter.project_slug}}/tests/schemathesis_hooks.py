"""Hooks of the OpenAPI fuzz test (test_container_openapi.py), loaded by schemathesis.

Schemathesis sends text/* bodies as text but knows no `application/jsonlines`: the
/invocations body of that type is text, one JSON record per line.
"""

import schemathesis

schemathesis.serializer.alias("application/jsonlines", "text/plain")
