"""The log fields as DuckDB's ``read_json`` should type them: the SQL oracle and the benchmarks' plain DuckDB builds
read the logs so. No other import, so a benchmark timing a bare DuckDB script imports nothing else."""

LOG_COLUMNS = (
    "{'artist': 'VARCHAR', 'auth': 'VARCHAR', 'firstName': 'VARCHAR', 'gender': 'VARCHAR', "
    "'itemInSession': 'BIGINT', 'lastName': 'VARCHAR', 'length': 'DOUBLE', 'level': 'VARCHAR', "
    "'location': 'VARCHAR', 'method': 'VARCHAR', 'page': 'VARCHAR', 'registration': 'DOUBLE', "
    "'sessionId': 'BIGINT', 'song': 'VARCHAR', 'status': 'BIGINT', 'ts': 'BIGINT', 'userAgent': 'VARCHAR', "
    "'userId': 'VARCHAR'}"
)
