ARG BASE=alpine
ARG TAG=3.19
FROM --platform=$BUILDPLATFORM ${BASE}:${TAG} AS build
ARG TAG
ENV APP_HOME=/srv/app GREETING="hello world"
ENV LEGACY some value with spaces
WORKDIR $APP_HOME
COPY --chmod=755 --link ["entry point.sh", "./"]
ADD --chown=1000:1000 https://example.invalid/file.tar.gz /tmp/
RUN --mount=type=cache,target=/root/.cache,sharing=locked --network=none make
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
RUN echo "$GREETING" | tee /greeting
USER 1000:1000
EXPOSE 8080/tcp 8443 5353/udp
VOLUME ["/data"]
VOLUME /cache /logs
LABEL maintainer="ops@example.invalid" version="${TAG}"
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --start-interval=1s --retries=5 CMD ["/bin/check", "--quick"]
ONBUILD COPY . /app/src
ONBUILD RUN make -C /app/src
MAINTAINER Ops Team <ops@example.invalid>
ENTRYPOINT ["/srv/app/entry point.sh"]
CMD ["--help"]

FROM scratch AS final
COPY --from=build /srv/app /app
COPY --from=0 /greeting /greeting
CMD ["/app/run"]
