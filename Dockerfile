# The project's Airflow image: the pinned official image plus this project's requirements and package.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:0 requirements.txt constraints.txt pyproject.toml README.md /opt/teamsops/
COPY --chown=airflow:0 include /opt/teamsops/include
COPY --chown=airflow:0 plugins /opt/teamsops/plugins
RUN pip install --no-cache-dir -r /opt/teamsops/requirements.txt -c /opt/teamsops/constraints.txt \
 && pip install --no-cache-dir --no-deps /opt/teamsops
