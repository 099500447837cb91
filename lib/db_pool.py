"""The database pool's health check, without a round trip for a connection that looks alive.

Django checks a pooled connection when it is taken (CONN_HEALTH_CHECKS with psycopg_pool's
`check_connection`) by running an empty query: one round trip to PostgreSQL for every request,
task and websocket connect, whether or not anything happened to the connection. A connection
the server has dropped (a restart, a failover, pg_terminate_backend) has its socket readable:
the server's goodbye, or the end of the stream. So the socket is asked first, which costs no
round trip, and only a readable one gets psycopg_pool's check, which replaces it if it is dead
(or reads whatever harmless message the server had sent). A connection lost without a word
(a silent network partition) is not caught by either check; the query's own error is.
"""

import select


def check_connection(conn) -> None:
    poller = select.poll()  # not select.select(): a web process may hold fds above 1024
    poller.register(conn.fileno(), select.POLLIN)
    if poller.poll(0):
        from psycopg_pool import ConnectionPool

        ConnectionPool.check_connection(conn)
