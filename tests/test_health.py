"""/sante: the health check of the reverse proxy and the benchmarks' ceiling — it answers without
the database, for anyone, and is never cached."""

from tests.support import queries_for


def test_the_health_check_answers_ok_without_a_query(app, client):
    assert queries_for(client, "/sante") == 0
    answer = client.get("/sante")
    assert answer.data == b"ok\n" and answer.mimetype == "text/plain"
    assert answer.headers["Cache-Control"] == "no-store"
