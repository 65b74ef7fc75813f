"""Bearer-token users authorised by the cluster's own RBAC objects (Roles, ClusterRoles and their bindings).

The sandbox stays open by default: a request without a token, or with any token it was not told about (the
kubeconfig's ``sandbox`` token included), acts as the cluster's administrator, as before. A token registered with
:meth:`Authorizer.add_user` is a named user whose every request is checked against the RBAC objects stored in the
cluster, the way kube-apiserver's RBAC authoriser does: a rule of a RoleBinding in the request's namespace, or of a
ClusterRoleBinding, whose subjects name the user (or one of its groups), must allow the verb on the resource.
Forbidden requests are answered with kube-apiserver's 403 Status text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from flaggerpy.sandbox.apiserver.errors import StatusError
from flaggerpy.sandbox.apiserver.registry import Registry, ResourceType
from flaggerpy.sandbox.apiserver.store import Store

RBAC = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class User:
    """Who a registered token authenticates as."""

    name: str
    groups: tuple[str, ...] = ()


def _matches(values: Iterable[str] | None, wanted: str) -> bool:
    listed = list(values or ())
    return "*" in listed or wanted in listed


def _rule_allows(rule: dict[str, Any], verb: str, group: str, resource: str, name: str | None) -> bool:
    if not (_matches(rule.get("verbs"), verb) and _matches(rule.get("apiGroups"), group)
            and _matches(rule.get("resources"), resource)):
        return False
    names = rule.get("resourceNames") or []
    return not names or (name is not None and name in names)


class Authorizer:
    """Maps registered bearer tokens to users and decides their requests from the stored RBAC objects."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self._store = store
        self._registry = registry
        self._users: dict[str, User] = {}

    def add_user(self, token: str, name: str, groups: Iterable[str] = ()) -> None:
        """Authenticate ``token`` as ``name`` (member of ``groups``); its requests are then checked by RBAC."""
        if not token or not name:
            raise ValueError("a user needs a non-empty token and name")
        self._users[token] = User(name, tuple(groups))

    def user_of(self, authorization: str | None) -> User | None:
        """The registered user of an ``Authorization: Bearer`` header; None for the sandbox's administrator."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        return self._users.get(authorization.removeprefix("Bearer ").strip())

    def check(self, authorization: str | None, verb: str, rt: ResourceType, namespace: str | None,
              name: str | None, subresource: str | None) -> None:
        """Raise a 403 StatusError when a registered user may not ``verb`` the resource."""
        user = self.user_of(authorization)
        if user is None:
            return
        resource = rt.plural + (f"/{subresource}" if subresource else "")
        if any(_rule_allows(rule, verb, rt.group, resource, name) for rule in self._rules(user, namespace)):
            return
        where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        raise StatusError(403, "Forbidden",
                          f'{rt.qualified} is forbidden: User "{user.name}" cannot {verb} resource "{resource}" '
                          f'in API group "{rt.group}" {where}',
                          {"group": rt.group, "kind": rt.plural, **({"name": name} if name else {})})

    def _rules(self, user: User, namespace: str | None) -> Iterator[dict[str, Any]]:
        bindings: list[tuple[dict[str, Any], str | None]] = [
            (b, None) for b in self._items("clusterrolebindings", None)
        ]
        if namespace:
            bindings += [(b, namespace) for b in self._items("rolebindings", namespace)]
        for binding, bound_namespace in bindings:
            if not any(self._names(subject, user) for subject in binding.get("subjects") or []):
                continue
            ref = binding.get("roleRef") or {}
            if ref.get("kind") == "ClusterRole":
                role = self._get("clusterroles", "", str(ref.get("name")))
            elif bound_namespace is not None:
                role = self._get("roles", bound_namespace, str(ref.get("name")))
            else:
                role = None
            yield from (role or {}).get("rules") or []

    @staticmethod
    def _names(subject: dict[str, Any], user: User) -> bool:
        kind, name = subject.get("kind"), subject.get("name")
        return (kind == "User" and name == user.name) or (kind == "Group" and name in user.groups)

    def _type(self, plural: str) -> ResourceType:
        rt = self._registry.resolve(RBAC, "v1", plural)
        assert rt is not None, f"{plural}.{RBAC} is a built-in type"
        return rt

    def _items(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        return list(self._store.items(self._type(plural).key, namespace))

    def _get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._store.get(self._type(plural).key, namespace, name)
