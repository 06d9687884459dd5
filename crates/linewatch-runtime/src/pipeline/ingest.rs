//! A consumed message: readings are decoded and pushed into their partition's windower,
//! inspections into the labels buffer and the retraining buffer; what cannot be decoded goes
//! to the dead-letter topic. Also the consumer-lag gauge.

use anyhow::Context as _;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::{BorrowedMessage, Message};

use super::Pipeline;
use crate::kafka::{self, LwContext};
use crate::telemetry::Health;
use crate::telemetry::events::{
    ConsumerLag, InspectionDecoded, LongValueRepeated, MachineOnSeveralPartitions, MessageConsumed,
    MessageDeadLettered, ReadingDecoded, ReadingLate, RekeyReplayDropped, SparkplugDecoded,
};
use linewatch_window::{Decoded, PushError, PushOutcome, Reading, Windower};

impl Pipeline {
    /// Handles one message of the readings or the inspections topic.
    pub(super) async fn on_message(
        &mut self,
        m: &BorrowedMessage<'_>,
        producer: &kafka::Producer,
    ) -> anyhow::Result<()> {
        self.health.tick();
        MessageConsumed { topic: m.topic() }.emit(&mut self.progress);
        let payload = m.payload().unwrap_or_default();
        let (p, offset) = (m.partition(), m.offset());
        let readings = m.topic() == self.windowed_topic;
        if readings && self.first_copy(m)? {
            // The contract's JSON is windowed borrowed from the message, and the long JSON
            // format gathered without copying its ids; every other format decodes into owned
            // values.
            let decoded = if let Some(reading) = self.decoder.decode_reading_ref(payload) {
                match reading {
                    Ok(r) => {
                        ReadingDecoded.emit(&mut self.progress);
                        self.check_keying(&r.line, &r.machine, p);
                        if let Err(e) = self.window_with(p, |w| w.push_ref(&r, offset as u64))? {
                            self.dead_letter(m, producer, e.reason(), &e.to_string())
                                .await?;
                        }
                        None
                    }
                    Err(e) => Some(Err(e)),
                }
            } else {
                match self.decoder.decode_long(payload, m.key()) {
                    Some(Ok(value)) => {
                        self.gather(p, value, offset)?;
                        None
                    }
                    Some(Err(e)) => Some(Err(e)),
                    None => Some(self.decoder.decode(payload, m.key())),
                }
            };
            if let Some(decoded) = decoded {
                match decoded {
                    Ok(Decoded::Reading(reading)) => {
                        ReadingDecoded.emit(&mut self.progress);
                        self.check_keying(&reading.line, &reading.machine, p);
                        if let Err(e) = self.window_with(p, |w| w.push(&reading, offset as u64))? {
                            self.dead_letter(m, producer, e.reason(), &e.to_string())
                                .await?;
                        }
                    }
                    Ok(Decoded::Value(value)) => self.gather(p, value.into(), offset)?,
                    Ok(Decoded::Sparkplug(msg)) => {
                        SparkplugDecoded {
                            kind: msg.kind,
                            skipped: msg.skipped,
                        }
                        .emit(&mut self.progress);
                        if let [reading] = msg.readings.as_slice() {
                            // One instant: refused like a wide reading.
                            ReadingDecoded.emit(&mut self.progress);
                            self.check_keying(&reading.line, &reading.machine, p);
                            if let Err(e) =
                                self.window_with(p, |w| w.push(reading, offset as u64))?
                            {
                                self.dead_letter(m, producer, e.reason(), &e.to_string())
                                    .await?;
                            }
                        } else {
                            // Several instants: once one is windowed the message cannot go to
                            // the dead letters whole (a replay would double it), so a refusal is
                            // logged and counted, as for gathered long-format readings.
                            for reading in &msg.readings {
                                self.check_keying(&reading.line, &reading.machine, p);
                                self.window_assembled(p, reading, offset as u64)?;
                            }
                        }
                    }
                    Err(e) => {
                        self.dead_letter(m, producer, e.reason(), &e.to_string())
                            .await?;
                    }
                }
            }
        }
        if readings {
            let st = self.partition(p)?;
            st.last_consumed = Some(offset);
            if st.pending.first_offset.is_none() {
                st.pending.first_offset = Some(offset);
            }
            st.pending.last_offset = Some(offset);
        } else {
            match linewatch_window::decode_inspection(payload, &self.limits) {
                Ok(ins) => {
                    InspectionDecoded.emit(&mut self.progress);
                    self.buffer.label(&ins.machine, ins.ts_ms, ins.defect);
                    self.label_parts.entry(p).or_default().push(ins);
                }
                Err(e) => {
                    self.dead_letter(m, producer, e.reason(), &e.to_string())
                        .await?;
                }
            }
            self.label_parts.entry(p).or_default().consumed(offset);
        }
        Ok(())
    }

    /// Whether a message of the windowed topic is to be windowed: always without
    /// `kafka.rekey`; with it, unless it is a copy the re-keying stage forwarded again
    /// ([`ReplayFilter`](crate::rekey::ReplayFilter), counted and dropped).
    fn first_copy(&mut self, m: &BorrowedMessage<'_>) -> anyhow::Result<bool> {
        if !self.cfg.kafka.rekey {
            return Ok(true);
        }
        let src = match crate::rekey::source_of(m) {
            Ok(src) => src,
            Err(why) => {
                tracing::warn!(partition = m.partition(), offset = m.offset(), %why,
                    "a message of the re-keyed topic with unreadable source headers is windowed \
                     without the replay check");
                None
            }
        };
        if self.partition(m.partition())?.replays.admit(src) {
            return Ok(true);
        }
        if let Some(src) = src {
            RekeyReplayDropped {
                source_partition: src.partition,
                source_offset: src.offset,
            }
            .emit(&mut self.progress);
        }
        Ok(false)
    }

    /// Where a message came from, for its dead letter: a re-keyed message's readings
    /// partition and offset (its dead letter goes to the readings topic's dead-letter topic),
    /// else its own.
    fn origin<'m>(&'m self, m: &'m BorrowedMessage<'_>) -> (&'m str, i32, i64) {
        if self.cfg.kafka.rekey
            && m.topic() == self.windowed_topic
            && let Ok(Some(src)) = crate::rekey::source_of(m)
        {
            return (&self.cfg.kafka.readings_topic, src.partition, src.offset);
        }
        (m.topic(), m.partition(), m.offset())
    }

    /// Gathers one long-format value; a reading it completes goes to the windower (counted
    /// as a reading there, `window_assembled`).
    fn gather(
        &mut self,
        p: i32,
        value: linewatch_window::LongValueRef<'_>,
        offset: i64,
    ) -> anyhow::Result<()> {
        self.check_keying(&value.line, &value.machine, p);
        let out = self.partition(p)?.assembler.push_ref(value, offset as u64);
        if out.duplicate {
            LongValueRepeated.emit(&mut self.progress);
        }
        if let Some((reading, seq)) = out.reading {
            self.window_assembled(p, &reading, seq)?;
        }
        Ok(())
    }

    /// Reports a machine seen on a second readings partition (the keying contract).
    fn check_keying(&mut self, line: &str, machine: &str, p: i32) {
        if let Some(partitions) = self.keying.observe(line, machine, p) {
            MachineOnSeveralPartitions {
                machine,
                partitions: &partitions,
            }
            .emit(&mut self.progress);
        }
    }

    /// Pushes a reading into partition `p`'s windower (`push`: [`Windower::push`] of an owned
    /// reading or [`Windower::push_ref`] of a borrowed one) and scores what closed; the
    /// windower's refusal comes back for the caller to dead-letter.
    fn window_with(
        &mut self,
        p: i32,
        push: impl FnOnce(&mut Windower) -> Result<PushOutcome, PushError>,
    ) -> anyhow::Result<Result<(), PushError>> {
        let st = self.partition(p)?;
        match push(&mut st.windower) {
            Ok(outcome) => {
                if outcome.is_late() {
                    ReadingLate.emit(&mut self.progress);
                }
                self.drain_closed(p);
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// A reading gathered from long-format values, or one of several instants of a Sparkplug B
    /// message: its message is behind it or partly windowed, so a refusal is logged and
    /// counted with the dead letters (reason from the windower), not sent.
    pub(super) fn window_assembled(
        &mut self,
        p: i32,
        reading: &Reading,
        seq: u64,
    ) -> anyhow::Result<()> {
        ReadingDecoded.emit(&mut self.progress);
        if let Err(e) = self.window_with(p, |w| w.push(reading, seq))? {
            tracing::warn!(machine = %reading.machine, ts_ms = reading.ts_ms, error = %e,
                "a gathered long-format reading was refused by the windower");
            MessageDeadLettered {
                topic: &self.cfg.kafka.readings_topic,
                partition: p,
                offset: seq as i64,
                reason: e.reason(),
            }
            .emit(&mut self.progress);
        }
        Ok(())
    }

    /// Sends a message that cannot be used to `<topic><dlq_suffix>`, with the reason, without
    /// waiting for its acknowledgement: dead letters go out at the rate the broker accepts
    /// them, and [`Pipeline::settle_dead_letters`] awaits them all before any offset is
    /// committed (on every tick, and whenever [`MAX_PENDING_DEAD_LETTERS`] or
    /// [`MAX_PENDING_DEAD_LETTER_BYTES`] wait).
    async fn dead_letter(
        &mut self,
        m: &BorrowedMessage<'_>,
        producer: &kafka::Producer,
        reason: &str,
        detail: &str,
    ) -> anyhow::Result<()> {
        let (topic, partition, offset) = self.origin(m);
        let (topic, partition, offset) = (topic.to_owned(), partition, offset);
        MessageDeadLettered {
            topic: &topic,
            partition,
            offset,
            reason,
        }
        .emit(&mut self.progress);
        loop {
            match kafka::enqueue_dead_letter(
                producer,
                &topic,
                &self.cfg.kafka.dlq_suffix,
                partition,
                offset,
                m.key(),
                m.payload().unwrap_or_default(),
                reason,
                detail,
            ) {
                Ok(p) => {
                    self.dead_letters.push(p);
                    self.dead_letter_bytes += m.payload_len() + m.key_len();
                    break;
                }
                Err(e) if kafka::is_queue_full(&e) => self.settle_dead_letters().await?,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("dead-lettering {topic}/{partition}@{offset}"));
                }
            }
        }
        if self.dead_letters.len() >= MAX_PENDING_DEAD_LETTERS
            || self.dead_letter_bytes >= MAX_PENDING_DEAD_LETTER_BYTES
        {
            self.settle_dead_letters().await?;
        }
        Ok(())
    }

    /// Awaits the acknowledgement of every dead letter sent so far (as long as the broker
    /// takes: see [`kafka::await_ack`]). Called before offsets are committed, so an offset is
    /// never committed past a dead letter the broker has not acknowledged.
    pub(super) async fn settle_dead_letters(&mut self) -> anyhow::Result<()> {
        let pending = std::mem::take(&mut self.dead_letters);
        self.dead_letter_bytes = 0;
        kafka::settle(pending, &self.health, self.cfg.kafka.ack_timeout).await
    }
}

/// Dead letters that may wait for their acknowledgements at once, by count and by payload
/// bytes (memory stays bounded during a flood of bad messages, whatever their size).
pub(super) const MAX_PENDING_DEAD_LETTERS: usize = 10_000;
pub(super) const MAX_PENDING_DEAD_LETTER_BYTES: usize = 32 << 20;

/// Sets the consumer-lag gauge ([`kafka::consumer_lag`]: NaN when unknown, never 0) and the
/// broker's state: reachable when it answered (watermarks, or metadata while nothing is
/// assigned), unreachable after two ticks in a row without an answer (`failures` counts
/// them; one slow answer on a busy machine is not an outage).
pub(super) fn report_lag(
    consumer: &StreamConsumer<LwContext>,
    health: &Health,
    failures: &mut u32,
) {
    let (lag, answered) = kafka::consumer_lag(consumer);
    if answered {
        *failures = 0;
        health.broker_reachable();
    } else {
        *failures += 1;
        if *failures >= 2 {
            health.broker_unreachable();
        }
    }
    ConsumerLag { messages: lag }.emit();
}
