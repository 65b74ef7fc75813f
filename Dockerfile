# syntax=docker/dockerfile:1
# The controller image: `flaggerpy run` and the client commands, nothing of the sandbox, the demo, the load tester
# or the dashboard, and none of their dependencies. Every Python package comes from a hashed lock:
#   requirements/image.lock  the controller's runtime dependencies (pip-compile --generate-hashes of pyproject.toml)
#   requirements/build.lock  the build backend
# Regenerate both with the commands at the top of each file after changing the dependencies.
#
# The base image is pinned by digest. This digest of python:3.11-slim was read from public Dockerfiles (two
# unrelated projects pin the same one); it could not be pulled or checked against Docker Hub from where it was
# written. Before a release: docker buildx imagetools inspect python:3.11-slim, and update both FROM lines.
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# Build stage: the locked dependencies and the controller's wheel, installed into a virtualenv.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN python -m venv /opt/flaggerpy
ENV PATH=/opt/flaggerpy/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements/image.lock requirements/build.lock ./requirements/
RUN pip install --require-hashes --no-deps -r requirements/image.lock \
 && pip install --require-hashes --no-deps --target /tmp/build-backend -r requirements/build.lock
COPY pyproject.toml README.md ./
COPY flaggerpy ./flaggerpy
# The packages only the sandbox, the demo, the load tester and the dashboard use stay out of the wheel.
RUN rm -rf flaggerpy/sandbox flaggerpy/demo flaggerpy/loadtester flaggerpy/dashboard \
 && PYTHONPATH=/tmp/build-backend pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheel . \
 && pip install --no-deps --no-compile /tmp/wheel/flaggerpy-*.whl \
 && find /opt/flaggerpy -name '__pycache__' -prune -exec rm -rf {} +

# Runtime stage: only the interpreter and the virtualenv; no compiler, no sources, no pip cache.
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 65532 flaggerpy \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin flaggerpy
COPY --from=build /opt/flaggerpy /opt/flaggerpy
ENV PATH=/opt/flaggerpy/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["flaggerpy"]
CMD ["run"]
