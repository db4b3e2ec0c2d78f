"""Tests for therapist.reasoning: splitting reasoning from the patient-facing answer."""
from __future__ import annotations

import itertools
import random

import pytest

from therapist.reasoning import (
    Split,
    StreamSplitter,
    format_reasoning,
    split_reasoning,
    split_transcript_turn,
    strip_reasoning,
)

TAG_TEXTS = ("<think>", "</think>", "<|thinking|>", "<|answer|>")


def assert_no_tags(text: str) -> None:
    lowered = text.lower()
    for tag in TAG_TEXTS:
        assert tag not in lowered, f"raw tag {tag!r} leaked into {text!r}"


# --- split_reasoning -------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello, how are you?", Split(None, "Hello, how are you?", "none")),
        ("  \n Hi there \n", Split(None, "Hi there", "none")),
        ("if a < b and <thought> then", Split(None, "if a < b and <thought> then", "none")),
        ("ends with a partial tag <thi", Split(None, "ends with a partial tag <thi", "none")),
        ("", Split(None, "", "none")),
        ("<think>plan the reply</think>How are you?", Split("plan the reply", "How are you?", "ok")),
        ("\n  <think>\n plan \n</think>\n\nHow are you?\n", Split("plan", "How are you?", "ok")),
        ("<THINK>upper</Think>answer", Split("upper", "answer", "ok")),
        ("<think></think>answer", Split("", "answer", "ok")),
        ("<|thinking|> weigh CBT vs ACT <|answer|> Let's try that.", Split("weigh CBT vs ACT", "Let's try that.", "ok")),
        ("<|THINKING|>r<|Answer|>a", Split("r", "a", "ok")),
    ],
)
def test_split_reasoning_well_formed(text, expected):
    assert split_reasoning(text) == expected


def test_answer_before_opening_tag_is_kept_and_flagged():
    result = split_reasoning("Hi.\n<think>they seem tense</think>\nHow are you?")
    assert result == Split("they seem tense", "Hi.\n\nHow are you?", "malformed")


def test_unclosed_block_is_all_reasoning():
    assert split_reasoning("<think>still weighing options") == Split("still weighing options", "", "unclosed")
    assert split_reasoning("<|thinking|>no answer marker") == Split("no answer marker", "", "unclosed")
    assert split_reasoning("<think>") == Split("", "", "unclosed")


def test_closing_tag_without_opener_makes_preceding_text_reasoning():
    assert split_reasoning("they are avoidant</think>What feels hard?") == Split(
        "they are avoidant", "What feels hard?", "malformed"
    )
    assert split_reasoning("</think>answer") == Split("", "answer", "malformed")


def test_answer_marker_without_thinking_marker():
    assert split_reasoning("reasoning here<|answer|>the answer") == Split("reasoning here", "the answer", "malformed")


def test_second_block_in_answer_is_moved_to_reasoning():
    result = split_reasoning("<think>first</think>Hello. <think>second</think>How are you?")
    assert result == Split("first\n\nsecond", "Hello. How are you?", "malformed")


def test_stray_closer_after_a_block_reclassifies_text_since_that_block():
    result = split_reasoning("<think>a</think>b</think>c")
    assert result == Split("a\n\nb", "c", "malformed")


def test_nested_opener_with_content_is_malformed_but_repeated_empty_opener_is_not():
    assert split_reasoning("<think>a<think>b</think>c") == Split("ab", "c", "malformed")
    assert split_reasoning("<think>\n<think>a</think>c") == Split("a", "c", "ok")


def test_unclosed_takes_precedence_over_malformed():
    assert split_reasoning("Hi <think>hmm") == Split("hmm", "Hi", "unclosed")


def test_mixed_styles_still_close():
    assert split_reasoning("<think>r<|answer|>a") == Split("r", "a", "ok")


def test_reasoning_is_none_exactly_when_status_none():
    for text in SAMPLES:
        result = split_reasoning(text)
        assert (result.reasoning is None) == (result.status == "none"), text
        assert result.status in {"none", "ok", "unclosed", "malformed"}


def test_answer_never_contains_tags():
    for text in SAMPLES:
        assert_no_tags(split_reasoning(text).answer)


def test_strip_reasoning():
    assert strip_reasoning("<think>secret</think> visible ") == "visible"
    assert strip_reasoning("plain") == "plain"
    assert strip_reasoning("<think>secret") == ""


# --- format_reasoning ----------------------------------------------------------------

def test_format_reasoning_exact_output():
    assert format_reasoning("r", "a") == "<think>\nr\n</think>\na"
    assert format_reasoning("r", "a", style="studies") == "<|thinking|>r<|answer|>a"
    assert format_reasoning("", "a") == "a"
    assert format_reasoning("", "a", style="studies") == "a"


def test_format_reasoning_round_trips():
    for style in ("think", "studies"):
        text = format_reasoning("  weigh options\nline 2 ", " Answer here. ", style=style)
        assert split_reasoning(text) == Split("weigh options\nline 2", "Answer here.", "ok")


def test_format_reasoning_rejects_unknown_style():
    with pytest.raises(ValueError, match="unknown reasoning style"):
        format_reasoning("r", "a", style="xml")


# --- StreamSplitter ------------------------------------------------------------------

def test_stream_holds_back_tag_prefix_across_chunks():
    s = StreamSplitter()
    assert s.feed("<th") == ("", "")
    assert not s.in_reasoning
    assert s.feed("ink>plan") == ("plan", "")
    assert s.in_reasoning
    assert s.feed(" more</thi") == (" more", "")
    assert s.in_reasoning
    assert s.feed("nk>Hel") == ("", "Hel")
    assert not s.in_reasoning
    assert s.feed("lo") == ("", "lo")
    assert s.finish() == ("", "")
    assert (s.reasoning, s.answer) == ("plan more", "Hello")
    assert s.result() == Split("plan more", "Hello", "ok")
    assert not s.retracted


def test_stream_releases_text_that_is_not_a_tag():
    s = StreamSplitter()
    assert s.feed("a <") == ("", "a ")
    assert s.feed(" b") == ("", "< b")
    assert s.feed(" <th") == ("", " ")
    assert s.feed("ought>") == ("", "<thought>")
    assert s.feed("<|ans") == ("", "")
    assert s.feed("wer") == ("", "")
    assert s.feed("ing") == ("", "<|answering")
    assert s.result() == Split(None, "a < b <thought><|answering", "none")


def test_stream_finish_flushes_held_back_text():
    s = StreamSplitter()
    assert s.feed("cut off <thin") == ("", "cut off ")
    # result() must not lose the held-back text even before finish().
    assert s.result() == Split(None, "cut off <thin", "none")
    assert s.finish() == ("", "<thin")
    assert s.answer == "cut off <thin"


def test_stream_start_in_reasoning_for_prefilled_opener():
    s = StreamSplitter(start_in_reasoning=True)
    assert s.in_reasoning
    assert s.feed("they want reassurance</th") == ("they want reassurance", "")
    assert s.feed("ink>Let's slow down.") == ("", "Let's slow down.")
    assert s.result() == Split("they want reassurance", "Let's slow down.", "ok")
    assert not s.retracted


def test_stream_start_in_reasoning_without_closer_is_unclosed():
    s = StreamSplitter(start_in_reasoning=True)
    s.feed("thinking only")
    s.finish()
    assert s.result() == Split("thinking only", "", "unclosed")


def test_stream_retracts_answer_when_closer_has_no_opener():
    s = StreamSplitter()
    assert s.feed("they are avoidant") == ("", "they are avoidant")
    assert not s.retracted
    assert s.feed("</think>What feels hard?") == ("they are avoidant", "What feels hard?")
    assert s.retracted
    assert (s.reasoning, s.answer) == ("they are avoidant", "What feels hard?")
    assert s.result() == Split("they are avoidant", "What feels hard?", "malformed")


def test_stream_no_retraction_when_stray_closer_arrives_in_same_chunk():
    s = StreamSplitter()
    assert s.feed("hidden</think>shown") == ("hidden", "shown")
    assert not s.retracted


def test_stream_in_reasoning_toggles_with_studies_tags():
    s = StreamSplitter()
    s.feed("<|thinking|>")
    assert s.in_reasoning
    s.feed("r<|answer|>")
    assert not s.in_reasoning
    assert s.result() == Split("r", "", "ok")


SAMPLES = [
    "plain answer with no markup",
    "a < b, and <thought> is not a tag; <|ans is not either",
    "<think>reason about the patient</think>Answer to patient.",
    "  \n<think>\nstep 1\nstep 2\n</think>\n\nHello there.",
    "<THINK>Mixed Case</tHiNk>ok",
    "<think></think>empty reasoning",
    "<|thinking|>studies reasoning<|answer|>studies answer",
    "chat first <think>then think</think> then answer",
    "<think>never closed, still < thinking <thin",
    "stray reasoning</think>answer after stray",
    "reason<|answer|>answer only marker",
    "<think>one</think>mid <think>two</think>end",
    "<think>a</think>b</think>c",
    "<think>x<think>y</think>z <</think>",
    "<<think>>inner<</think>>",
    "tail <|thinking",
]


def chunkings(text: str, rng: random.Random):
    """Every way of cutting ``text`` the tests care about, as lists of chunks."""
    n = len(text)
    yield [text]
    for size in (1, 2, 3, 5, 7):
        yield [text[i : i + size] for i in range(0, n, size)] or [""]
    for cut in range(n + 1):
        yield [text[:cut], text[cut:]]
    if n <= 45:  # every two-cut split of the short samples: tags cut at any two places
        for a, b in itertools.combinations(range(n + 1), 2):
            yield [text[:a], text[a:b], text[b:]]
    for _ in range(100):
        cuts = sorted(rng.sample(range(n + 1), k=min(n + 1, rng.randint(1, 8))))
        bounds = [0, *cuts, n]
        yield [text[x:y] for x, y in itertools.pairwise(bounds)]


@pytest.mark.parametrize("start_in_reasoning", [False, True])
@pytest.mark.parametrize("text", SAMPLES)
def test_stream_matches_whole_text_for_every_chunking(text, start_in_reasoning):
    prefix = "<think>" if start_in_reasoning else ""
    expected = split_reasoning(prefix + text)
    whole = StreamSplitter(start_in_reasoning)
    whole.feed(text)
    whole.finish()
    rng = random.Random(20240611)
    count = 0
    for chunks in chunkings(text, rng):
        assert "".join(chunks) == text
        s = StreamSplitter(start_in_reasoning=start_in_reasoning)
        r_parts, a_parts = [], []
        for chunk in chunks:
            r, a = s.feed(chunk)
            assert_no_tags(a)
            r_parts.append(r)
            a_parts.append(a)
        r, a = s.finish()
        r_parts.append(r)
        a_parts.append(a)
        reasoning, answer = "".join(r_parts), "".join(a_parts)
        assert s.result() == expected, chunks
        assert (s.reasoning, s.answer) == (whole.reasoning, whole.answer), chunks
        assert reasoning == s.reasoning, chunks
        if not s.retracted:
            assert answer == s.answer, chunks
        if expected.reasoning is not None:
            assert reasoning.strip() == expected.reasoning
        assert s.answer.strip() == expected.answer
        assert_no_tags(s.answer)
        count += 1
    assert count > 100


def test_stream_retraction_only_happens_for_stray_closers():
    # Splitting every sample one character at a time exercises the retraction path;
    # only samples with a closer but no open block may retract.
    retracting = set()
    for text in SAMPLES:
        s = StreamSplitter()
        for ch in text:
            s.feed(ch)
        s.finish()
        if s.retracted:
            retracting.add(text)
    assert retracting == {
        "stray reasoning</think>answer after stray",
        "reason<|answer|>answer only marker",
        "<think>a</think>b</think>c",
        "<think>x<think>y</think>z <</think>",
    }


# --- split_transcript_turn -------------------------------------------------------------

def test_transcript_thinking_then_therapist_line():
    text = "Therapist Thinking: They sound anxious.\nConsider grounding.\nTherapist: Let's take a breath together."
    assert split_transcript_turn(text) == Split(
        "They sound anxious.\nConsider grounding.", "Let's take a breath together.", "ok"
    )


def test_transcript_reasoning_may_span_paragraphs_when_answer_is_labelled():
    text = "Thinking: first idea\n\nsecond idea\nTherapist: The answer."
    assert split_transcript_turn(text) == Split("first idea\n\nsecond idea", "The answer.", "ok")


def test_transcript_unlabelled_answer_follows_blank_line():
    text = "thinking: short plan\nmore plan\n\nHow has your week been?\nAnything stand out?"
    assert split_transcript_turn(text) == Split(
        "short plan\nmore plan", "How has your week been?\nAnything stand out?", "ok"
    )


def test_transcript_thinking_with_no_answer_is_unclosed():
    assert split_transcript_turn("Therapist Thinking: only a plan\nstill planning") == Split(
        "only a plan\nstill planning", "", "unclosed"
    )
    assert split_transcript_turn("Thinking: plan\n\n") == Split("plan", "", "unclosed")


def test_transcript_several_thinking_sections_are_malformed():
    text = "Thinking: a\nTherapist Thinking: b\nTherapist: answer"
    assert split_transcript_turn(text) == Split("a\n\nb", "answer", "malformed")


def test_transcript_answer_before_thinking_is_malformed():
    text = "Therapist: Hello.\nTherapist Thinking: should have thought first\nTherapist: How are you?"
    assert split_transcript_turn(text) == Split("should have thought first", "Hello.\n\nHow are you?", "malformed")


def test_transcript_without_thinking_sections():
    assert split_transcript_turn("Therapist: Just an answer.") == Split(None, "Just an answer.", "none")
    assert split_transcript_turn("Just an answer.") == Split(None, "Just an answer.", "none")
    # "thinking" mid-sentence is not a header.
    assert split_transcript_turn("I was thinking: maybe we try this.") == Split(
        None, "I was thinking: maybe we try this.", "none"
    )


def test_transcript_with_think_tags():
    assert split_transcript_turn("Therapist: <think>plan</think> Hello.") == Split("plan", "Hello.", "ok")
    assert split_transcript_turn("<|thinking|>p<|answer|>a") == Split("p", "a", "ok")


def test_transcript_tags_inside_answer_never_reach_patient():
    text = "Thinking: plan\nTherapist: <think>extra</think>Hello."
    result = split_transcript_turn(text)
    assert result == Split("plan\n\nextra", "Hello.", "malformed")
    assert_no_tags(result.answer)
