"""creditrisk: the plain-Python core of the BNPL credit-risk platform.

Nothing in this package imports Airflow; DAG tasks and the API call into it.
"""

__version__ = "0.1.0"
