"""The search space: ordered dotted name -> :class:`Param`, with the ``depends_on`` relations between them.

Built from a schema by automl/space/build.py. What a sampler needs from it: the parameters in an order
where parents come first, each one's distribution once its parents are drawn (:meth:`conditioned`),
a whole draw in an Optuna trial (:meth:`suggest`); what a report or a resume needs: is a configuration a
point of the space (:meth:`problems`), and its JSON description (:meth:`to_dict`, search_space.json).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from automl.space.param import Param
from automl.space.relations import Relation
from automl.space.schema import SearchSpaceError, did_you_mean


@dataclass(frozen=True)
class SearchSpace:
    """Ordered dotted name -> distribution; parents come before the parameters that depend on them."""

    params: Mapping[str, Param]
    relations: Mapping[str, Tuple[Relation, ...]] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # schema defaults, for reports/baselines
    notes: Tuple[str, ...] = ()  # every silent-looking decision, spelled out

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "relations", MappingProxyType({k: tuple(v) for k, v in self.relations.items()}))
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "notes", tuple(self.notes))
        seen = set()
        for name in self.params:
            for rel in self.relations.get(name, ()):
                if rel.parent not in seen:
                    raise SearchSpaceError(f"search space: '{name}' depends on '{rel.parent}', which must be "
                                           "a searched parameter listed before it.")
            seen.add(name)

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    def __contains__(self, name: object) -> bool:
        return name in self.params

    def __getitem__(self, name: str) -> Param:
        return self.params[name]

    def items(self):
        return self.params.items()

    def __reduce__(self):  # read-only mappings do not pickle; Ray's OptunaSearch pickles the space
        return SearchSpace, (dict(self.params), dict(self.relations), dict(self.defaults), self.notes)

    def conditioned(self, name: str, values: Mapping[str, Any]) -> Param:
        """The distribution of `name` once its parents have the given values (define-by-run samplers)."""
        dist = self.params[name]
        for rel in self.relations.get(name, ()):
            try:
                dist = dist.restricted(**rel.bounds(values[rel.parent]))
            except ValueError as exc:
                raise SearchSpaceError(f"search space: '{name}' {rel} = {values[rel.parent]!r} leaves no "
                                       f"value to sample ({exc})") from exc
        return dist

    def suggest(self, trial) -> Dict[str, Any]:
        """Draw every parameter in an Optuna trial, parents first, each child narrowed by its relations."""
        out: Dict[str, Any] = {}
        for name in self.params:
            out[name] = self.conditioned(name, out).suggest(trial, name)
        return out

    def sample(self, seed: Optional[int] = None) -> Dict[str, Any]:
        """One configuration ``{dotted name: value}`` drawn by Optuna's RandomSampler (None: fresh entropy)."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        return self.suggest(study.ask())

    def problems(self, config: Mapping[str, Any]) -> List[str]:
        """Why `config` is not a point of this space (empty list when it is)."""
        out = [f"'{n}' is missing" for n in self.params if n not in config]
        out += [f"'{n}' is not searched here{did_you_mean(n, self.names)}" for n in config if n not in self.params]
        for name, dist in self.params.items():
            if name not in config:
                continue
            if not dist.contains(config[name]):
                out.append(f"'{name}' = {config[name]!r} is outside {dist.to_dict()}")
            for rel in self.relations.get(name, ()):
                if rel.parent in config and not rel.holds(config[name], config[rel.parent]):
                    out.append(f"'{name}' = {config[name]!r} violates '{name} {rel}' "
                               f"({rel.parent} = {config[rel.parent]!r})")
        return out

    def contains(self, config: Mapping[str, Any]) -> bool:
        return not self.problems(config)

    def to_dict(self) -> dict:
        return {"parameters": {n: {**d.to_dict(), **({"depends_on": [str(r) for r in self.relations[n]]}
                                                      if self.relations.get(n) else {})}
                               for n, d in self.params.items()},
                "defaults": dict(self.defaults), "notes": list(self.notes)}
