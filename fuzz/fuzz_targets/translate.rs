//! Arbitrary bytes as codex's stdout, through the same line reader and
//! translator as `turn` and `replay`: no panic, and the terminal rule holds.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plexum_openai_provider::event::{ErrorCode, Event, TurnError, Usage};
use plexum_openai_provider::line_reader::{LineRead, LineReader};
use plexum_openai_provider::exec::translate::Translator;
use plexum_openai_provider::translate::{StreamEnd, TurnContext};

fuzz_target!(|data: &[u8]| {
    // The first byte picks how the stream ends and what the turn knew.
    let (selector, stream) = data.split_first().unwrap_or((&0, &[]));
    let mut translator = Translator::new(TurnContext {
        model: String::from("codex"),
        resumed_thread: (selector & 1 == 1).then(|| String::from("01a20bef-77e0-7061-a52a-e86d8a4aaf20")),
        previous_totals: (selector & 2 == 2).then(Usage::default),
        notices: Vec::new(),
        output_limit: 256,
    });
    // A small cap so the oversized-line path runs too.
    let mut lines = LineReader::new(stream, None).with_max_line(4096);
    let mut line = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    loop {
        match lines.next_line(&mut line).expect("reading a slice cannot fail") {
            LineRead::Line => {
                translator.line(&line, &mut events);
            }
            LineRead::Oversized(length) => translator.oversized_line(length, &mut events),
            LineRead::End => break,
        }
    }
    let end = match selector >> 2 & 3 {
        0 => StreamEnd::Closed,
        1 => StreamEnd::Crashed { how: String::from("exited with code 1"), stderr_tail: String::new() },
        _ => StreamEnd::Stopped(TurnError::new(ErrorCode::Timeout, "timed out")),
    };
    translator.finish(end, &mut events);

    let terminal: Vec<usize> = (0..events.len()).filter(|&i| events[i].is_terminal()).collect();
    assert_eq!(terminal, [events.len() - 1], "exactly one terminal event, last");
    let starts = events.iter().filter(|e| matches!(e, Event::MessageStart { .. })).count();
    assert!(starts <= 1);
    if starts == 1 {
        assert!(matches!(events[0], Event::MessageStart { .. }));
    }
    for event in &events {
        serde_json::to_string(event).expect("every event serialises");
    }
});
