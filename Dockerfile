# kube-api-auth image: Swift stdlib linked statically, run as uid 1000, entrypoint as Rancher's
# image (`kube-api-auth serve`). The build stage runs scripts/build-release, which CI can run too.
#
# The base images are build arguments so that a machine that cannot pull them can make its own from
# Debian packages: scripts/image-test builds this file with debootstrapped bases and Swift's
# toolchain mounted at build time. Elsewhere the defaults below are what `podman build .` uses.
# BUILD_IMAGE is the Swift release the project is built and tested with.
ARG BUILD_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN bash scripts/build-release /out

FROM ${RUNTIME_IMAGE}
# The shared libraries the binary links beyond glibc, each installed by name so that a smaller base
# cannot drop one silently (scripts/check-image-libraries compares this list with ldd in the tests):
# libcrypto (libssl3: scrypt); libstdc++ and libgcc_s (the C++ runtime and unwinder that the
# statically linked Swift runtime and Foundation need); libz (zlib1g).
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 libstdc++6 libgcc-s1 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 kubeapiauth && useradd --uid 1000 --gid 1000 --no-create-home --shell /usr/sbin/nologin kubeapiauth
COPY --from=build /out/kube-api-auth /usr/bin/kube-api-auth
USER 1000:1000
ENTRYPOINT ["kube-api-auth"]
CMD ["serve"]
