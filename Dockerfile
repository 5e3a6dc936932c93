# evpipe image: built on Debian 12 with the distribution's libraries.
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gcc make pkg-config librdkafka-dev libpq-dev libyajl-dev libcurl4-openssl-dev \
        libyaml-dev libpcre2-dev libxlsxwriter-dev libmicrohttpd-dev zlib1g-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)" build/evpipe

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        librdkafka1 libpq5 libyajl2 libcurl4 libyaml-0-2 libpcre2-8-0 libxlsxwriter1 \
        libmicrohttpd12 zlib1g libssl3 uap-core ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/evpipe /usr/local/bin/evpipe
USER nobody
ENTRYPOINT ["/usr/local/bin/evpipe"]
CMD ["--help"]
