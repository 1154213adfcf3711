from orderflow import tracing


def test_incoming_traceparent_is_continued_and_children_share_the_trace():
    parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    ctx = tracing.from_headers(parent, "corr-1", causation_id="evt-1")
    assert ctx.trace_id == "a" * 32 and ctx.span_id != "b" * 16
    assert ctx.correlation_id == "corr-1" and ctx.causation_id == "evt-1"
    child = ctx.child()
    assert child.trace_id == ctx.trace_id and child.span_id != ctx.span_id and child.causation_id == "evt-1"


def test_malformed_traceparent_starts_a_new_trace():
    ctx = tracing.from_headers("garbage", None)
    assert len(ctx.trace_id) == 32 and ctx.correlation_id


def test_new_ids_are_well_formed_w3c_ids_and_do_not_repeat():
    ids = [tracing.new_root() for _ in range(2000)]
    for ctx in ids:
        assert tracing._TRACEPARENT.match(ctx.traceparent), ctx.traceparent
        assert ctx.trace_id != "0" * 32 and ctx.span_id != "0" * 16
    assert len({ctx.trace_id for ctx in ids}) == len(ids) and len({ctx.span_id for ctx in ids}) == len(ids)
