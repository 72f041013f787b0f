# The project's Airflow image: the pinned official image plus this project's requirements and package.
# Used by every service in docker-compose.yaml (and by the Helm chart, see docs/deployment.md). The tag must match
# apache-airflow in requirements.txt (tests/deploy/test_compose.py checks it): installing requirements.txt into an
# image of another version would replace the image's Airflow with a build the image was not assembled for.
FROM apache/airflow:3.3.2-python3.11

# Dependencies first, in their own layer, so that a code change does not reinstall them. Installed at build time
# rather than through _PIP_ADDITIONAL_REQUIREMENTS, which reinstalls on every container start and lets each
# container end up with different versions. constraints.txt pins every transitive dependency; `pip check` fails the
# build if those pins broke something the base image already had (e.g. one of its bundled providers).
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/teamsops/
RUN pip install --no-cache-dir -r /opt/teamsops/requirements.txt -c /opt/teamsops/constraints.txt \
 && pip check

# The project itself (teamsops from include/, teamsops_airflow from plugins/). Installing it, and not only mounting
# the folders, registers the `msteams` connection type (the provider entry point) and makes the code importable by
# every component, including a Kubernetes pod that has no checkout to mount.
COPY --chown=airflow:0 pyproject.toml README.md /opt/teamsops/
COPY --chown=airflow:0 include /opt/teamsops/include
COPY --chown=airflow:0 plugins /opt/teamsops/plugins
RUN pip install --no-cache-dir --no-deps /opt/teamsops

# Deployment scripts run by airflow-init (audit database, UI passwords file).
COPY --chown=airflow:0 docker /opt/teamsops/docker

# Mount points of the named volumes: a new named volume copies the owner and mode of the directory it is mounted
# on, so these make the volumes writable by the airflow user and by any AIRFLOW_UID in group 0 (what the image
# supports for arbitrary user ids).
USER root
RUN install -d -o airflow -g 0 -m 2775 /opt/airflow/msteams-data /opt/airflow/auth /opt/teamsops/sim
USER airflow
