"""gql 4.4.0 (requests transport) against the real keygate binary: GitHub's GraphQL API as a real client sees it.

GitHub Enterprise clients post to ``/api/graphql`` (beside ``/api/v3``), github.com clients to ``/graphql``; every
test runs against both. The cast is conftest.py's: alice maintains acme/widgets and is not a member of
other/secret, bob is a reporter on acme/widgets.
"""

from __future__ import annotations

import pytest
import requests
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import TransportQueryError, TransportServerError
from gql.transport.requests import RequestsHTTPTransport

TIMEOUT = 15

PATHS = pytest.mark.parametrize("path", ["/api/graphql", "/graphql"], ids=["ghes", "bare"])

KEYS_PAGE = """
    query Keys($first: Int, $after: String, $last: Int, $before: String) {
      repository(owner: "acme", name: "widgets") {
        nameWithOwner
        deployKeys(first: $first, after: $after, last: $last, before: $before) {
          totalCount
          pageInfo { hasNextPage endCursor hasPreviousPage startCursor }
          nodes { id title key readOnly verified createdAt }
          edges { cursor node { id } }
        }
      }
    }
"""


def keys_page(**variables) -> GraphQLRequest:
    return GraphQLRequest(KEYS_PAGE, variable_values=variables)


def client(gw, path: str, user: str | None = "alice", *, schema: bool = False) -> Client:
    """A gql client on ``gw.url + path`` with ``user``'s token (none for ``None``). With ``schema``, gql first
    fetches the schema by introspection and then checks every query against it before sending it."""
    headers = {"Authorization": f"bearer {gw.tokens[user]}"} if user else {}
    transport = RequestsHTTPTransport(url=gw.url + path, headers=headers, timeout=TIMEOUT, retries=0)
    return Client(transport=transport, fetch_schema_from_transport=schema)


def add_keys(gw, ssh_keys, n: int) -> list[dict]:
    """``n`` new deploy keys on acme/widgets through the REST API, oldest first."""
    made = []
    for i in range(n):
        res = requests.post(
            f"{gw.url}/api/v3/repos/acme/widgets/keys",
            headers={"Authorization": f"token {gw.tokens['alice']}"},
            json={"title": f"gql-{i}", "key": ssh_keys.public(f"gql-{i}"), "read_only": i % 2 == 0},
            timeout=TIMEOUT,
        )
        assert res.status_code == 201, res.text
        made.append(res.json())
    return made


@PATHS
def test_viewer(gateway, path):
    gw = gateway
    # What the GitHub CLI sends to check its login.
    assert client(gw, path).execute(gql("query UserCurrent{viewer{login}}")) == {"viewer": {"login": "alice"}}
    viewer = client(gw, path, "bob").execute(gql("{ viewer { login id name } }"))["viewer"]
    rest = requests.get(f"{gw.url}/user", headers={"Authorization": f"token {gw.tokens['bob']}"}, timeout=TIMEOUT)
    assert viewer == {"login": "bob", "id": rest.json()["node_id"], "name": None}


@PATHS
def test_deploy_keys_two_page_walk(gateway, ssh_keys, path):
    gw = gateway
    made = add_keys(gw, ssh_keys, 3)
    # gql checks these queries against the schema it fetched by introspection before sending them.
    c = client(gw, path, schema=True)
    first = c.execute(keys_page(first=2))["repository"]["deployKeys"]
    assert first["totalCount"] == 3
    assert first["pageInfo"]["hasNextPage"] is True and first["pageInfo"]["hasPreviousPage"] is False
    second = c.execute(keys_page(first=2, after=first["pageInfo"]["endCursor"]))
    second = second["repository"]["deployKeys"]
    assert second["pageInfo"]["hasNextPage"] is False and second["pageInfo"]["hasPreviousPage"] is True
    nodes = first["nodes"] + second["nodes"]
    assert [n["title"] for n in nodes] == ["gql-0", "gql-1", "gql-2"]
    assert [n["key"] for n in nodes] == [m["key"] for m in made]
    assert [n["readOnly"] for n in nodes] == [m["read_only"] for m in made]
    assert [n["createdAt"] for n in nodes] == [m["created_at"] for m in made]
    assert len({n["id"] for n in nodes}) == 3
    for page in (first, second):
        assert [e["node"]["id"] for e in page["edges"]] == [n["id"] for n in page["nodes"]]
        assert page["edges"][-1]["cursor"] == page["pageInfo"]["endCursor"]

    # Backwards from the end: the same keys, the same ids.
    tail = c.execute(keys_page(last=2))["repository"]["deployKeys"]
    assert [n["id"] for n in tail["nodes"]] == [n["id"] for n in nodes[1:]]
    assert tail["pageInfo"]["hasPreviousPage"] is True
    head = c.execute(keys_page(last=2, before=tail["pageInfo"]["startCursor"]))
    head = head["repository"]["deployKeys"]
    assert [n["id"] for n in head["nodes"]] == [nodes[0]["id"]]
    assert head["pageInfo"]["hasPreviousPage"] is False


@PATHS
def test_errors_reach_the_client_in_githubs_shape(gateway, path):
    gw = gateway
    c = client(gw, path)
    with pytest.raises(TransportQueryError) as err:
        c.execute(gql('{ repository(owner: "other", name: "secret") { nameWithOwner } }'))
    assert err.value.data == {"repository": None}
    assert err.value.errors[0]["type"] == "NOT_FOUND"
    assert err.value.errors[0]["path"] == ["repository"]
    assert err.value.errors[0]["message"] == "Could not resolve to a Repository with the name 'other/secret'."

    with pytest.raises(TransportQueryError) as err:
        c.execute(gql('{ repository(owner: "acme", name: "widgets") { deployKeys { totalCount } } }'))
    assert err.value.errors[0]["type"] == "MISSING_PAGINATION_BOUNDARIES"

    with pytest.raises(TransportServerError) as err:
        client(gw, path, None).execute(gql("{ viewer { login } }"))
    assert err.value.code == 401
