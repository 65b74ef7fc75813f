# syntax=docker/dockerfile:1
# Build stage: build a wheel and install it with its runtime dependencies into a virtualenv.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/flaggerpy
ENV PATH=/opt/flaggerpy/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY flaggerpy ./flaggerpy
RUN pip install --no-compile . && find /opt/flaggerpy -name '__pycache__' -prune -exec rm -rf {} +

# Runtime stage: only the interpreter and the virtualenv; no compiler, no sources, no pip cache.
FROM python:3.11-slim
RUN groupadd --system --gid 65532 flaggerpy \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin flaggerpy
COPY --from=build /opt/flaggerpy /opt/flaggerpy
ENV PATH=/opt/flaggerpy/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["flaggerpy"]
CMD ["run"]
