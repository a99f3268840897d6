# Enclave production image: the web server, the Celery workers and the one-shot migrate job all run
# from this image (see docker-compose.yml); only the command differs.
#
# Build:
#   docker build -t enclave .
#
# torch is installed first and alone, from TORCH_SPEC, so that its build is chosen here and
# `pip install .` afterwards keeps it: the project pins torch==2.13.0, and a build with a local label
# such as "+cpu" or "+cu128" still satisfies that pin. The default spec takes whichever build the
# configured package index serves for this platform (on Linux that may be the CUDA-enabled wheel).
# GPU images override it with the wheel index of the CUDA build they need, e.g.
#   docker build --build-arg TORCH_SPEC="torch==2.13.0 --index-url ..." -t enclave .
# where "..." is the CUDA wheel index (or the organisation's mirror of it); a CPU-only image passes
# the CPU wheel index the same way.
FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.13.0"

# PYTHONPATH: every process (gunicorn, celery, manage.py) imports the project from /app, where
#   templates/ and static/ sit beside it.
# HF_*_OFFLINE: nothing is fetched from a model hub at run time; weights come from the read-only
#   /models volume.
# STATIC_ROOT: collected static files live in the image, outside the data directory, so a volume
#   mounted on /data can never hide them or keep a previous release's copies.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=enclave.settings.production \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    OMP_NUM_THREADS=1 \
    ENCLAVE_DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles

# /data/artifacts and /data/beat exist and belong to enclave, so named volumes mounted there start with that owner.
RUN groupadd --system --gid 10001 enclave \
    && useradd --system --uid 10001 --gid enclave --home-dir /home/enclave --create-home \
        --shell /usr/sbin/nologin enclave \
    && mkdir -p /data/artifacts /data/beat \
    && chown -R enclave:enclave /data

WORKDIR /app

# python-ldap (LDAP sign-in) compiles against OpenLDAP's and SASL's headers; the runtime libraries stay. DejaVu:
# the dossier PDF's font (any script; without it fpdf2 falls back to Latin-1 Helvetica).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libldap2-dev libsasl2-dev fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# Unquoted on purpose: TORCH_SPEC may carry pip options (--index-url ...) after the requirement.
RUN pip install ${TORCH_SPEC}

# The code is owned by root and read-only for the enclave user.
COPY . /app
RUN pip install . \
    && rm -rf /app/build /app/*.egg-info

# collectstatic imports the production settings, which require a SECRET_KEY: this throwaway value
# exists only for this build step and is not kept in the image. The data directory of this step is a
# scratch folder, removed afterwards, so nothing in /data is created by root.
RUN SECRET_KEY=build-only-not-a-secret ENCLAVE_DATA_DIR=/tmp/enclave-build \
        python manage.py collectstatic --noinput \
    && rm -rf /tmp/enclave-build

USER enclave

EXPOSE 8000

CMD ["gunicorn", "enclave.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4"]
