# The ML variant of the sandbox image, for image-recognition training and evaluation: Debian's own
# torch, torchvision, Pillow and numpy on top of the runner image (no pip, no wheels from the internet).
# Built by `lumia image build --ml` as lumia-runner-ml:latest; BASE is the runner image just built.
# Needs the Debian mirror (LUMIA_DEBIAN_MIRROR / the base's sources.list), never a container registry.
ARG BASE=lumia-runner:latest
FROM ${BASE}
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3-torch python3-torchvision python3-pil python3-numpy \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /usr/share/doc/* /usr/share/man/* \
 && python3 -c "import torch, torchvision, PIL, numpy; print('torch', torch.__version__)"
# Torch would otherwise start one thread per host core, whatever the container's CPU quota.
ENV OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
WORKDIR /opt/lumia
CMD ["python3", "-m", "game_vault.serve", "--help"]
