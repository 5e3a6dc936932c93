# evpipe image: one binary for every stage, built on Debian 12 by the same steps CI runs
# (.ci/run: tools/deps.sh, then make), so the image cannot drift from what is tested.
FROM debian:12 AS build
WORKDIR /src
COPY tools/deps.sh tools/deps_data.sh tools/
RUN sh tools/deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make -j"$(nproc)" all

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        librdkafka1 libpq5 libyajl2 libcurl4 libyaml-0-2 libpcre2-8-0 libxlsxwriter1 \
        libmicrohttpd12 zlib1g libssl3 uap-core ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/evpipe /usr/local/bin/evpipe
COPY --from=build /usr/local/share/evpipe /usr/local/share/evpipe
USER nobody
ENTRYPOINT ["/usr/local/bin/evpipe"]
CMD ["--help"]
