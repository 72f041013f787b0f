"""teamsops: Airflow-free code to sync and administer Microsoft Teams / Entra ID through Microsoft Graph.

Sub-packages:

* ``teamsops.graph``     - the Graph client (msal + httpx): auth, retries, paging, batching, delta, rate limits.
* ``teamsops.simulator`` - a faithful Graph + identity platform + Bot Framework simulator (tests and the demo tenant).
"""
