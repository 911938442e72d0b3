"""State dicts: every bad field is named, and a failed load changes nothing."""
import pytest
import torch

from dglbs import KNNBatchSampler, UniformBatchSampler, WalkBatchSampler

N = 120


def make(kind, **kwargs):
    if kind == "uniform":
        return UniformBatchSampler(N, 16, **kwargs)
    if kind == "knn":
        sampler = KNNBatchSampler(N, 16, chunk_size=3, **kwargs)
    else:
        sampler = WalkBatchSampler(N, 16, num_candidates=30, num_neighbors=5, chunk_size=3, **kwargs)
    sampler.set_embeddings(torch.randn(N, 4, generator=torch.Generator().manual_seed(0)))
    return sampler


def mid_epoch_state(kind, **kwargs):
    sampler = make(kind, **kwargs)
    iterator = iter(sampler)
    [next(iterator) for _ in range(4)]
    return sampler.state_dict()


def bad_values(value):
    """Replacements a fuzzer tries for one field."""
    yield None
    yield "x"
    yield -1
    yield 10**12
    yield 0.5
    if isinstance(value, torch.Tensor):
        yield value[:-1]
        yield value.float()
        if value.dtype != torch.bool and value.numel():
            yield value - value.max() - 1  # negative ids
            yield value + N  # out of range
    if isinstance(value, (tuple, list)):
        yield tuple(value)[:1]
    if isinstance(value, dict):
        for key in value:
            for bad in bad_values(value[key]):
                yield {**value, key: bad}
        yield {}


@pytest.mark.parametrize("kind", ["uniform", "knn", "rwr", "dfs"])
@pytest.mark.parametrize("policy", ["cover", "independent"])
def test_fuzzed_states_are_rejected_by_name_and_leave_the_sampler_as_it_was(kind, policy):
    options = {} if kind == "uniform" else {"epoch_policy": policy}
    if kind == "dfs":
        options["strategy"] = "dfs"
    good = mid_epoch_state(kind, **options)

    def fresh():
        sampler = make(kind, **options)
        sampler.set_epoch(3)
        return sampler, list(sampler)

    target, expected = fresh()
    rejected = 0
    for key, value in good.items():
        for bad in [*bad_values(value), "missing"]:
            state = dict(good)
            if bad == "missing":
                del state[key]
            else:
                state[key] = bad
            try:
                target.load_state_dict(state)
            except (TypeError, ValueError) as error:
                rejected += 1
                assert key in str(error) or "state" in str(error), str(error)
                assert (target.epoch, target.position, target.resume_position) == (3, len(target), 0)
                assert list(target) == expected, f"a rejected load of {key}={bad!r} changed the sampler"
            else:
                # Accepted only when the value means the same (e.g. alpha 0.5 as a float).
                target, expected = fresh()
    assert rejected > 10
    target.load_state_dict(good)
    assert target.position == 4


def test_state_of_another_sampler_class_or_policy_is_rejected():
    walk_state = mid_epoch_state("rwr", epoch_policy="cover")
    with pytest.raises(ValueError, match="missing keys|kind"):
        make("knn").load_state_dict(walk_state)
    with pytest.raises(ValueError, match="epoch_policy='cover'"):
        make("rwr", epoch_policy="independent").load_state_dict(walk_state)
    with pytest.raises(ValueError, match="strategy='rwr'"):
        make("rwr", strategy="bfs", epoch_policy="cover").load_state_dict(walk_state)


def test_truncated_graph_and_bad_ids_in_a_state_are_named():
    state = mid_epoch_state("rwr")
    search = state["search"]
    cases = {
        "indptr must have N": {**search, "indptr": search["indptr"][:-5]},
        r"node ids must be in \[0, 120\)": {**search, "indices": search["indices"] * 0 - 3},
        "end at len": {**search, "indices": search["indices"][:-1]},
    }
    for match, bad in cases.items():
        sampler = make("rwr")
        with pytest.raises(ValueError, match=match):
            sampler.load_state_dict({**state, "search": bad})


def test_a_used_mask_that_does_not_match_the_position_is_rejected():
    state = mid_epoch_state("rwr", epoch_policy="cover")
    start, mask = state["used"]
    assert start > 0 and int(mask.sum()) == start * 16
    flipped = mask.clone()
    flipped[flipped.nonzero()[0]] = False  # one used instance fewer than the batches hold
    with pytest.raises(ValueError, match=r"state\['used'\]\[1\] marks"):
        make("rwr", epoch_policy="cover").load_state_dict({**state, "used": (start, flipped)})
