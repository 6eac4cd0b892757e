#!/usr/bin/env bash
# Generates Python messages, gRPC stubs and typed stubs (mypy-protobuf) from proto/ into services/.
# The only way generated code enters the tree; the output is git-ignored.
set -euo pipefail
python=$(cd "$(dirname "${1:?usage: gen-proto.sh PYTHON}")" && pwd)/$(basename "$1")
bin=$(dirname "$python")
cd "$(dirname "$0")/.."
find services/medcloud -path '*/v1/*_pb2*.py*' -delete
mapfile -t protos < <(cd proto && find medcloud -name '*.proto' | sort)
wkt=$("$python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
(cd proto && "$python" -m grpc_tools.protoc -I . -I "$wkt" \
  --python_out=../services --grpc_python_out=../services \
  --plugin=protoc-gen-mypy="$bin/protoc-gen-mypy" --mypy_out=../services --mypy_opt=quiet \
  --plugin=protoc-gen-mypy_grpc="$bin/protoc-gen-mypy_grpc" --mypy_grpc_out=../services --mypy_grpc_opt=quiet \
  "${protos[@]}")
echo "generated $(find services/medcloud -path '*/v1/*_pb2*.py' | wc -l) modules from ${#protos[@]} proto files"
