"""Gateway API to Envoy routes, as Envoy Gateway translates an HTTPRoute
attached to a Gateway listener: matches, their order, the rule clusters."""


def namespace_of(doc):
    return doc["metadata"].get("namespace", "default")


def key_of(doc):
    """A Kubernetes object's (namespace, name)."""
    return (namespace_of(doc), doc["metadata"]["name"])


def listener_name(gateway, listener):
    return f"{namespace_of(gateway)}/{gateway['metadata']['name']}/{listener['name']}"


def attached(route, gateway, listener):
    for ref in route["spec"].get("parentRefs", []):
        if ref.get("kind", "Gateway") != "Gateway":
            continue
        if (ref.get("namespace", namespace_of(route)), ref["name"]) != key_of(gateway):
            continue
        if ref.get("sectionName") in (None, listener["name"]):
            return True
    return False


def _path_match(path):
    kind, value = path.get("type", "PathPrefix"), path.get("value", "/")
    if kind == "Exact":
        return {"path": value}
    if kind == "RegularExpression":
        return {"safe_regex": {"regex": value}}
    return {"prefix": "/"} if value == "/" else {"path_separated_prefix": value.rstrip("/")}


def _header_match(h):
    if h.get("type", "Exact") == "RegularExpression":
        return {"name": h["name"], "string_match": {"safe_regex": {"regex": h["value"]}}}
    return {"name": h["name"], "string_match": {"exact": h["value"]}}


def _sort_key(item):
    """Envoy Gateway's route order: Exact > RegularExpression > PathPrefix,
    longer paths first, then more header matches (the method counts as
    one), then more query matches; the sort is stable."""
    match = item["gateway_api_match"]
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    rank = {"Exact": 0, "RegularExpression": 1}.get(path.get("type", "PathPrefix"), 2)
    headers = len(match.get("headers", [])) + (1 if match.get("method") else 0)
    return (rank, -len(path.get("value", "/")), -headers, -len(match.get("queryParams", [])))


def translate_routes(gateway, listener, routes):
    """[route entry] for the HTTPRoutes attached to `listener`: each with
    its Envoy route (`name`, `match`, `route.cluster`), the rule it came
    from (HTTPRoute key, rule index, rule name) and the Service it sends to."""
    entries = []
    for hr in routes:
        if not attached(hr, gateway, listener):
            continue
        ns, name = key_of(hr)
        hosts = hr["spec"].get("hostnames") or ["*"]
        for i, rule in enumerate(hr["spec"].get("rules", [])):
            refs = rule.get("backendRefs", [])
            cluster = f"httproute/{ns}/{name}/rule/{i}"
            for j, match in enumerate(rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]):
                for host in hosts:
                    m = _path_match(match.get("path") or {"type": "PathPrefix", "value": "/"})
                    headers = [_header_match(h) for h in match.get("headers", [])]
                    if match.get("method"):
                        headers.append({"name": ":method", "string_match": {"exact": match["method"]}})
                    if headers:
                        m["headers"] = headers
                    if match.get("queryParams"):
                        m["query_parameters"] = [{"name": q["name"], "string_match": {"exact": q["value"]}}
                                                 for q in match["queryParams"]]
                    entries.append({
                        "route": {"name": f"httproute/{ns}/{name}/rule/{i}/match/{j}/{host.replace('.', '_')}",
                                  "match": m, "route": {"cluster": cluster}},
                        "gateway_api_match": match, "host": host,
                        "httproute": (ns, name), "rule": i, "rule_name": rule.get("name"),
                        "cluster": cluster,
                        "service": (refs[0].get("namespace", ns), refs[0]["name"]) if refs else None,
                    })
    return sorted(entries, key=_sort_key)
