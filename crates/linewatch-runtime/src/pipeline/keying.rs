//! The keying contract, checked: every reading of a machine must arrive on one readings
//! partition (produce with the machine as the message key, or at least a key that never
//! splits one machine). A machine's windows live in its partition's windower; readings of it
//! on a second partition make a second, partial copy of its windows there (each written, with
//! part of the readings) and readings late in one copy that are on time in the other. Many
//! producers do not key by machine (MQTT bridges, Connect sources with a null key), so this
//! is detected here, per machine, and reported (metric, warning, summary count).

use std::collections::HashMap;

/// The readings partitions each machine (`line`, `machine`) was seen on by this process.
/// Memory: one entry per machine ever seen, holding its partitions (one, when the contract
/// holds).
#[derive(Debug, Default)]
pub struct MachinePartitions {
    seen: HashMap<String, HashMap<String, Vec<i32>>>,
}

impl MachinePartitions {
    /// Records a reading of `machine` of `line` on `partition`. Returns every partition the
    /// machine has been seen on, sorted, the first time it is seen on a partition other than
    /// its first; `None` otherwise (a known pair, or the machine's first reading).
    pub fn observe(&mut self, line: &str, machine: &str, partition: i32) -> Option<Vec<i32>> {
        let machines = match self.seen.get_mut(line) {
            Some(m) => m,
            None => self.seen.entry(line.to_owned()).or_default(),
        };
        match machines.get_mut(machine) {
            None => {
                machines.insert(machine.to_owned(), vec![partition]);
                None
            }
            Some(parts) if parts.contains(&partition) => None,
            Some(parts) => {
                parts.push(partition);
                parts.sort_unstable();
                Some(parts.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_on_one_partition_is_never_reported() {
        let mut m = MachinePartitions::default();
        for _ in 0..3 {
            assert_eq!(m.observe("L", "press-1", 2), None);
            assert_eq!(m.observe("L", "press-2", 0), None);
        }
    }

    #[test]
    fn each_new_partition_of_a_machine_is_reported_once() {
        let mut m = MachinePartitions::default();
        assert_eq!(m.observe("L", "press-1", 2), None);
        assert_eq!(m.observe("L", "press-1", 0), Some(vec![0, 2]));
        assert_eq!(m.observe("L", "press-1", 0), None);
        assert_eq!(m.observe("L", "press-1", 2), None);
        assert_eq!(m.observe("L", "press-1", 1), Some(vec![0, 1, 2]));
        assert_eq!(m.observe("L", "press-2", 1), None);
        // The same machine name on another line is another machine.
        assert_eq!(m.observe("M", "press-1", 1), None);
    }
}
