"""/var/runtime/bootstrap.py: order sys.path as Lambda's python3.13 runtime does, then run awslambdaric.

Lambda puts the function's code first, then its layers, then the interpreter's own paths
(the SDK in /var/lang/lib/python3.13/site-packages), then the runtime client. Debian's
dist-packages are not on a Lambda's path, so they are dropped.
"""

import os
import sys

TASK = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
RUNTIME = os.environ.get("LAMBDA_RUNTIME_DIR", "/var/runtime")
LAYERS = ["/opt/python/lib/python3.13/site-packages", "/opt/python"]
SDK = "/var/lang/lib/python3.13/site-packages"

interpreter = [path for path in sys.path[1:] if path and "dist-packages" not in path]
sys.path[:] = [TASK, *LAYERS, *interpreter, SDK, RUNTIME]

from awslambdaric.__main__ import main  # noqa: E402  (after the path is set, as Lambda's own bootstrap)

main([sys.argv[0], sys.argv[1]])
