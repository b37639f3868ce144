#!/bin/sh
# One virtualenv per inference peer for benchmarks/inference_peers.py, under $SENTITUNE_PEERS (default /tmp/peers).
# Each sees the system packages (the same CPU torch, tokenizers and sentitune) and adds the peer with the
# transformers it pins: optimum-onnx 0.1 needs transformers < 4.58, optimum-intel 2.2 < 5.6 (sentitune runs 5.x).
# optimum-intel goes in without its dependencies: they name torchvision, which would let pip pull another torch;
# `kernels` < 0.11 because the newer one the system has breaks transformers 5.5's import.
set -eu
PEERS=${SENTITUNE_PEERS:-/tmp/peers}
for env in ort ov ct2; do python -m venv --system-site-packages "$PEERS/$env"; done
"$PEERS/ort/bin/pip" install -q "optimum-onnx==0.1.0" "transformers>=4.57,<4.58"
"$PEERS/ov/bin/pip" install -q --no-deps "optimum-intel==2.2.0"
"$PEERS/ov/bin/pip" install -q "optimum==2.3.0" "transformers>=5.5,<5.6" "openvino==2026.4.1" \
    "openvino-tokenizers>=2026.0" "nncf>=3.3" "kernels<0.11"
"$PEERS/ct2/bin/pip" install -q "ctranslate2==4.8.5"
for env in ort ov ct2; do "$PEERS/$env/bin/python" -c "import torch; assert '+cpu' in torch.__version__, torch.__version__"; done
echo "peers ready under $PEERS"
