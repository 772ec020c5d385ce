//! The commands that wait for a charger task, and the one rule of how they wait: a command is
//! never dropped while its task runs (a lost reduction could overload the fuse); a newer
//! setpoint replaces a setpoint still waiting at the back (only the newest counts, so a busy
//! box is not fed a backlog of stale currents); start, stop and unlock keep their place.
//!
//! Sans-IO: the gateway's shell pushes what the core commands and drains the queue into the
//! task's channel as long as it has room.

use std::collections::VecDeque;

use super::ChargerCommand;

/// The commands waiting for one charging point's task, oldest first.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommandQueue {
    waiting: VecDeque<ChargerCommand>,
}

impl CommandQueue {
    /// Queues `command` after the waiting ones; a setpoint replaces a setpoint waiting last.
    pub fn push(&mut self, command: ChargerCommand) {
        if let (ChargerCommand::SetCurrent(_), Some(ChargerCommand::SetCurrent(_))) =
            (command, self.waiting.back())
        {
            self.waiting.pop_back();
        }
        self.waiting.push_back(command);
    }

    /// The oldest waiting command.
    pub fn front(&self) -> Option<ChargerCommand> {
        self.waiting.front().copied()
    }

    /// Removes the oldest waiting command (it was handed over).
    pub fn pop(&mut self) -> Option<ChargerCommand> {
        self.waiting.pop_front()
    }

    /// Drops everything (the task has stopped).
    pub fn clear(&mut self) {
        self.waiting.clear();
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Current;

    fn set(a: i32) -> ChargerCommand {
        ChargerCommand::SetCurrent(Current::from_amps(a))
    }

    #[test]
    fn a_newer_setpoint_replaces_the_waiting_one_and_others_keep_their_place() {
        let mut q = CommandQueue::default();
        q.push(set(16));
        q.push(set(10));
        assert_eq!(q.len(), 1);
        q.push(ChargerCommand::StartStop(false));
        q.push(set(8));
        q.push(set(6));
        q.push(ChargerCommand::StartStop(true));
        let drained: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            drained,
            [
                set(10),
                ChargerCommand::StartStop(false),
                set(6),
                ChargerCommand::StartStop(true)
            ]
        );
        assert!(q.is_empty());
    }
}
