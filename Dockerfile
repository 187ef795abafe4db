# kube-api-auth image: Swift stdlib linked statically, run as uid 1000, entrypoint as Rancher's
# image (`kube-api-auth serve`). The build stage runs scripts/build-release, which CI can run too.
FROM swift:6.3-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN bash scripts/build-release /out

FROM debian:bookworm-slim
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
