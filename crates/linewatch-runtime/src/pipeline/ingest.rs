//! A consumed message: readings are decoded and pushed into their partition's windower,
//! inspections into the labels buffer and the retraining buffer; what cannot be decoded goes
//! to the dead-letter topic. Also the consumer-lag gauge.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::Offset;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::FutureProducer;

use super::Pipeline;
use crate::kafka::{self, LwContext};
use crate::telemetry::events::{
    ConsumerLag, InspectionDecoded, MachineOnSeveralPartitions, MessageConsumed,
    MessageDeadLettered, ReadingDecoded, ReadingLate,
};

impl Pipeline {
    /// Handles one message of the readings or the inspections topic.
    pub(super) async fn on_message(
        &mut self,
        m: &BorrowedMessage<'_>,
        producer: &FutureProducer,
    ) -> anyhow::Result<()> {
        self.health.tick();
        MessageConsumed { topic: m.topic() }.emit(&mut self.progress);
        let payload = m.payload().unwrap_or_default();
        let (p, offset) = (m.partition(), m.offset());
        if m.topic() == self.cfg.kafka.readings_topic {
            match linewatch_window::decode_reading(payload, &self.limits) {
                Ok(reading) => {
                    ReadingDecoded.emit(&mut self.progress);
                    if let Some(partitions) =
                        self.keying.observe(&reading.line, &reading.machine, p)
                    {
                        MachineOnSeveralPartitions {
                            machine: &reading.machine,
                            partitions: &partitions,
                        }
                        .emit(&mut self.progress);
                    }
                    let st = self.partition(p)?;
                    match st.windower.push(&reading, offset as u64) {
                        Ok(outcome) => {
                            if outcome.is_late() {
                                ReadingLate.emit(&mut self.progress);
                            }
                            self.drain_closed(p);
                        }
                        Err(e) => {
                            self.dead_letter(m, producer, e.reason(), &e.to_string())
                                .await?;
                        }
                    }
                }
                Err(e) => {
                    self.dead_letter(m, producer, e.reason(), &e.to_string())
                        .await?;
                }
            }
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

    /// Sends a message that cannot be used to `<topic><dlq_suffix>`, with the reason.
    async fn dead_letter(
        &mut self,
        m: &BorrowedMessage<'_>,
        producer: &FutureProducer,
        reason: &str,
        detail: &str,
    ) -> anyhow::Result<()> {
        MessageDeadLettered {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            reason,
        }
        .emit(&mut self.progress);
        kafka::dead_letter(
            producer,
            m.topic(),
            &self.cfg.kafka.dlq_suffix,
            m.partition(),
            m.offset(),
            m.key(),
            m.payload().unwrap_or_default(),
            reason,
            detail,
            self.cfg.kafka.ack_timeout,
        )
        .await
        .with_context(|| {
            format!(
                "dead-lettering {}/{}@{}",
                m.topic(),
                m.partition(),
                m.offset()
            )
        })
    }
}

/// Sets the consumer-lag gauge: the messages between the consumer's position and the high
/// watermark, over its assigned partitions.
pub(super) fn report_lag(consumer: &StreamConsumer<LwContext>) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let Ok(position) = consumer.position() else {
        return;
    };
    let mut total = 0i64;
    for e in position.elements() {
        if let Offset::Offset(pos) = e.offset()
            && let Ok((_, high)) =
                consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_millis(500))
        {
            total += (high - pos).max(0);
        }
    }
    ConsumerLag { messages: total }.emit();
    // Lists returned by the consumer go before it does (rd_kafka_destroy hang).
    drop(position);
    drop(assignment);
}
