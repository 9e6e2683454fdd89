# What the prepared device calls (benchmarks/gpu_check.sh, benchmarks/gpu_gmpg_policy.sh) share; they source it.
#
# Here, before a call: the wheels the device machine lacks (the tree that travels is capped at 64 MiB and datasets/
# alone is larger; .whl, .gpu-data and carry-run are git-ignored):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl mujoco==4.0.0 mujoco-core==4.0.0 \
#     websockets==17.4 glfw==2.11.0 PyOpenGL==3.1.10 gymnasium==1.4.0 Farama-Notifications==0.0.6
#   (not mujoco-studio, which mujoco's metadata names but neither mujoco nor Gymnasium's envs import: 13 MB)
# then the data the call names into .gpu-data/, and the datasets out of the checkout for the call:
#   mkdir -p /tmp/ds-aside && mv datasets/*.hdf5 /tmp/ds-aside/          # put them back after the call

# gpu_env OUT [SMOKE]: on the device (SMOKE empty) install the carried wheels into /tmp/site, put them and the checkout
# on PYTHONPATH and write the GPU's name, memory and driver to OUT/versions.txt; in both modes add Python's and
# torch's versions to it. Returns 1 when the wheels do not install.
gpu_env() {
    if [ -z "$2" ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            .whl/*.whl || return 1
        export PYTHONPATH=/tmp/site:$PWD
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$1/versions.txt"
    fi
    python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())" \
        | tee -a "$1/versions.txt"
}
