#!/bin/sh
# /lambda-entrypoint.sh of Lambda's images: outside Lambda, the emulator runs the bootstrap.
if [ $# -ne 1 ]; then
    echo "entrypoint requires the handler name to be the first argument" 1>&2
    exit 142
fi
export _HANDLER="$1"
RUNTIME_ENTRYPOINT=/var/runtime/bootstrap
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
    exec /usr/local/bin/aws-lambda-rie $RUNTIME_ENTRYPOINT
else
    exec $RUNTIME_ENTRYPOINT
fi
