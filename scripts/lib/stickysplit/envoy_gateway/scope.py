"""Which EnvoyExtensionPolicy covers which HTTPRoute rule, by Envoy
Gateway's rules: the most specific target wins, then the oldest policy."""

from .routes import key_of, namespace_of


def _targets(policy):
    refs = list(policy["spec"].get("targetRefs", []))
    if policy["spec"].get("targetRef"):
        refs.append(policy["spec"]["targetRef"])
    return refs


def scope_level(policy, gateway, listener, httproute, rule_name):
    """How specifically `policy` targets a rule (`rule_name`, or None) of
    the HTTPRoute `httproute` ((ns, name)) on the Gateway listener
    `listener`: 3 the rule, 2 the HTTPRoute, 1 the listener, 0 the Gateway;
    None when it does not cover it. targetRefs are local: same namespace."""
    ns = namespace_of(policy)
    best = None
    for ref in _targets(policy):
        kind, section = ref.get("kind"), ref.get("sectionName")
        level = None
        if kind == "HTTPRoute" and (ns, ref["name"]) == httproute:
            if section is None:
                level = 2
            elif rule_name is not None and section == rule_name:
                level = 3
        elif kind == "Gateway" and (ns, ref["name"]) == key_of(gateway):
            if section is None:
                level = 0
            elif section == listener["name"]:
                level = 1
        if level is not None and (best is None or level > best):
            best = level
    return best


def _age(policy):
    meta = policy["metadata"]
    return (meta.get("creationTimestamp", ""), namespace_of(policy), meta["name"])


def policy_for(policies, gateway, listener, httproute, rule_name):
    """The one policy that applies to a rule: the most specific target
    wins; at one level the oldest creationTimestamp, then ns/name."""
    found = [(scope_level(p, gateway, listener, httproute, rule_name), p) for p in policies]
    found = [(level, p) for level, p in found if level is not None]
    if not found:
        return None
    top = max(level for level, _ in found)
    return min((p for level, p in found if level == top), key=_age)
