"""Take one message off the RabbitMQ queue, then score the dataset it names.

The message body is a file or folder path relative to /data/input; the scores go to the
same path under /data/scores. Standard library only, so it runs in the project's image. It
speaks to RabbitMQ's management API, at the URL KEDA reads the queue length from.
"""

import base64
import json
import os
import sys
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath


def take_message(url: str, queue: str) -> str | None:
    """The body of the queue's first message, removed from the queue; None when empty."""
    parts = urllib.parse.urlsplit(url)
    vhost = urllib.parse.unquote(parts.path.lstrip("/")) or "/"
    path = "/".join(urllib.parse.quote(name, safe="") for name in (vhost, queue))
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    request = urllib.request.Request(
        f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}/api/queues/{path}/get",
        data=json.dumps({"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        messages = json.load(response)
    return str(messages[0]["payload"]).strip() if messages else None


def main() -> int:
    queue = os.environ["QUEUE_NAME"]
    body = take_message(Path(os.environ["RABBITMQ_URL_FILE"]).read_text().strip(), queue)
    if body is None:
        print(f"queue {queue} is empty: nothing to score", file=sys.stderr)
        return 0
    dataset = PurePosixPath(body)
    if not body or dataset.is_absolute() or ".." in dataset.parts:
        print(f"message {body!r} is not a path under /data/input", file=sys.stderr)
        return 1
    print(f"scoring {dataset} (from queue {queue})", file=sys.stderr)
    source, target = f"/data/input/{dataset}", f"/data/scores/{dataset}"
    command = [
        "-m",
        "{{ cookiecutter.package_name }}",
        "predict",
        "--input",
        source,
        "--output",
        target,
    ]
    os.execvp(sys.executable, [sys.executable, *command])


if __name__ == "__main__":
    sys.exit(main())
