//! The device answered as ETS drives it: the byte sequences of the MV-07B0 load procedure
//! (`knx_master.xml`) and the management procedures (KNX 03.05.02), at injected time.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::knx::wire::apdu::tests::arb_tpdu;

const ETS: IndividualAddress = IndividualAddress::from_raw(0x0FFE);
const NEW: IndividualAddress = IndividualAddress::from_raw(0x110A); // 1.1.10

fn identity() -> Identity {
    Identity {
        serial_number: [0x00, 0xFA, 1, 2, 3, 4],
        manufacturer_id: 0x00FA,
        order_info: *b"KNX-ECH-01",
        hardware_type: [0, 0, 0, 0, 0, 1],
        firmware_version: [0x01, 0x01],
    }
}

fn to_device(dest: Destination, tpdu: Tpdu) -> LData {
    LData::new(LDataService::Ind, ETS, dest, tpdu)
}

/// A test ETS with its own sequence numbers.
struct Ets {
    device: Device,
    now: Instant,
    seq: u8,
}

impl Ets {
    fn new() -> Self {
        Self {
            device: Device::new(identity(), DeviceState::default()),
            now: Instant::now(),
            seq: 0,
        }
    }

    fn sent(&mut self) -> Vec<LData> {
        std::iter::from_fn(|| self.device.poll_transmit()).collect()
    }

    fn events(&mut self) -> Vec<DeviceEvent> {
        std::iter::from_fn(|| self.device.poll_event()).collect()
    }

    fn broadcast(&mut self, apdu: Apdu) -> Vec<LData> {
        let frame = to_device(BROADCAST, Tpdu::Data(apdu));
        self.device.handle_frame(self.now, &frame);
        self.sent()
    }

    fn connect(&mut self) {
        let frame = to_device(
            Destination::Individual(self.device.address()),
            Tpdu::Connect,
        );
        self.device.handle_frame(self.now, &frame);
        self.seq = 0;
        assert!(self.sent().is_empty());
    }

    /// Sends an APDU over the connection and returns the device's answer (acknowledged).
    fn request(&mut self, apdu: Apdu) -> Option<Apdu> {
        let own = self.device.address();
        let to = Destination::Individual(own);
        let seq = self.seq;
        self.seq = (self.seq + 1) & 0x0F;
        self.device.handle_frame(
            self.now,
            &to_device(
                to,
                Tpdu::ConnectedData {
                    sequence: seq,
                    apdu,
                },
            ),
        );
        let mut sent = self.sent().into_iter();
        let ack = sent.next().expect("T_ACK");
        assert_eq!(ack.tpdu, Tpdu::Ack { sequence: seq });
        assert_eq!(ack.destination, Destination::Individual(ETS));
        let answer = sent.next()?;
        assert!(sent.next().is_none());
        assert_eq!(answer.source, own, "answered from the address asked");
        let Tpdu::ConnectedData { sequence, apdu } = answer.tpdu else {
            panic!("not connected data: {answer:?}");
        };
        self.device
            .handle_frame(self.now, &to_device(to, Tpdu::Ack { sequence }));
        assert!(self.sent().is_empty());
        Some(apdu)
    }

    fn prop_write(&mut self, object: u8, id: u8, data: &[u8]) -> Apdu {
        let p = PropertyRef {
            object_index: object,
            property_id: id,
            count: 1,
            start_index: 1,
        };
        self.request(Apdu::PropertyValueWrite(p, data.to_vec()))
            .unwrap()
    }

    fn prop_read(&mut self, object: u8, id: u8) -> Vec<u8> {
        let p = PropertyRef {
            object_index: object,
            property_id: id,
            count: 1,
            start_index: 1,
        };
        match self.request(Apdu::PropertyValueRead(p)).unwrap() {
            Apdu::PropertyValueResponse(r, data) if r.count == 1 => data,
            other => panic!("{other}"),
        }
    }

    fn load_control(&mut self, object: u8, data: [u8; 10]) -> u8 {
        match self.prop_write(object, pid::LOAD_STATE_CONTROL, &data) {
            Apdu::PropertyValueResponse(_, state) => state[0],
            other => panic!("{other}"),
        }
    }

    /// Load + RelSegment + WriteRelMem (verify) + LoadCompleted of one table object.
    fn load(&mut self, object: u8, bytes: &[u8]) {
        assert_eq!(self.load_control(object, [4, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 0);
        assert_eq!(self.load_control(object, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 2);
        let [a, b, c, d] = u32::try_from(bytes.len()).unwrap().to_be_bytes();
        assert_eq!(
            self.load_control(object, [3, 0x0B, a, b, c, d, 0, 0, 0, 0]),
            2
        );
        let base = self.prop_read(object, pid::TABLE_REFERENCE);
        let base = u16::try_from(u32::from_be_bytes(base.try_into().unwrap())).unwrap();
        for (i, chunk) in bytes.chunks(10).enumerate() {
            let address = base + u16::try_from(i * 10).unwrap();
            let answer = self.request(Apdu::MemoryWrite {
                address,
                data: chunk.to_vec(),
            });
            assert_eq!(
                answer,
                Some(Apdu::MemoryResponse {
                    address,
                    data: chunk.to_vec()
                })
            );
        }
    }

    fn complete(&mut self, object: u8) {
        assert_eq!(self.load_control(object, [2, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 1);
    }
}

#[test]
fn individual_address_is_read_and_written_only_in_programming_mode() {
    let mut ets = Ets::new();
    assert!(ets.broadcast(Apdu::IndividualAddressRead).is_empty());
    ets.broadcast(Apdu::IndividualAddressWrite(NEW));
    assert_eq!(ets.device.address(), IndividualAddress::UNCONFIGURED);

    ets.device.set_programming_mode(true);
    let answer = ets.broadcast(Apdu::IndividualAddressRead);
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].source, IndividualAddress::UNCONFIGURED);
    assert_eq!(answer[0].destination, BROADCAST);
    assert_eq!(answer[0].tpdu.to_bytes().unwrap(), [0x01, 0x40]);

    ets.broadcast(Apdu::IndividualAddressWrite(NEW));
    assert_eq!(ets.device.address(), NEW);
    assert!(!ets.device.programming_mode());
    assert_eq!(
        ets.events(),
        vec![
            DeviceEvent::ProgrammingMode(true),
            DeviceEvent::AddressChanged(NEW),
            DeviceEvent::ProgrammingMode(false),
        ]
    );
}

#[test]
fn serial_number_addressing() {
    let mut ets = Ets::new();
    let sn = identity().serial_number;
    assert!(
        ets.broadcast(Apdu::IndividualAddressSerialNumberRead {
            serial_number: [9; 6]
        })
        .is_empty()
    );
    let answer = ets.broadcast(Apdu::IndividualAddressSerialNumberRead { serial_number: sn });
    assert_eq!(
        answer[0].tpdu,
        Tpdu::Data(Apdu::IndividualAddressSerialNumberResponse {
            serial_number: sn,
            domain_address: 0
        })
    );
    ets.broadcast(Apdu::IndividualAddressSerialNumberWrite {
        serial_number: sn,
        address: NEW,
    });
    assert_eq!(ets.device.address(), NEW);
}

#[test]
fn connect_descriptor_properties_and_authorize() {
    let mut ets = Ets::new();
    ets.connect();
    assert_eq!(
        ets.request(Apdu::DeviceDescriptorRead { descriptor_type: 0 })
            .unwrap()
            .to_bytes()
            .unwrap(),
        [0x03, 0x40, 0x07, 0xB0]
    );
    assert_eq!(
        ets.prop_read(0, pid::SERIAL_NUMBER),
        identity().serial_number
    );
    assert_eq!(ets.prop_read(0, pid::MANUFACTURER_ID), [0x00, 0xFA]);
    assert_eq!(ets.prop_read(0, pid::MAX_APDU_LENGTH), [0, 15]);
    assert_eq!(ets.prop_read(0, pid::ORDER_INFO), *b"KNX-ECH-01");
    assert_eq!(ets.prop_read(1, pid::LOAD_STATE_CONTROL), [0]);
    assert_eq!(ets.prop_read(1, pid::TABLE_REFERENCE), [0, 0, 0, 0]);
    assert_eq!(
        ets.request(Apdu::AuthorizeRequest { key: 0xFFFF_FFFF }),
        Some(Apdu::AuthorizeResponse { level: 0 })
    );
    // An unknown property answers with zero elements.
    let p = PropertyRef {
        object_index: 0,
        property_id: 200,
        count: 1,
        start_index: 1,
    };
    assert_eq!(
        ets.request(Apdu::PropertyValueRead(p)),
        Some(Apdu::PropertyValueResponse(
            PropertyRef { count: 0, ..p },
            vec![]
        ))
    );
    // Element count at start index 0.
    let p = PropertyRef {
        start_index: 0,
        property_id: pid::SERIAL_NUMBER,
        ..p
    };
    assert_eq!(
        ets.request(Apdu::PropertyValueRead(p)),
        Some(Apdu::PropertyValueResponse(p, vec![0, 1]))
    );
    // Descriptions by id and by index.
    let Some(Apdu::PropertyDescriptionResponse(d)) = ets.request(Apdu::PropertyDescriptionRead {
        object_index: 0,
        property_id: pid::PROG_MODE,
        property_index: 0,
    }) else {
        panic!()
    };
    assert!(d.write_enable);
    assert_eq!(d.property_type, properties::pdt::BITSET8);
    let Some(Apdu::PropertyDescriptionResponse(d)) = ets.request(Apdu::PropertyDescriptionRead {
        object_index: 4,
        property_id: 0,
        property_index: 4,
    }) else {
        panic!()
    };
    assert_eq!(d.property_id, pid::PROG_VERSION);
    // Programming mode through PID 54.
    ets.prop_write(0, pid::PROG_MODE, &[1]);
    assert!(ets.device.programming_mode());
}

#[test]
fn full_download_then_parameters_only() {
    let mut ets = Ets::new();
    ets.connect();
    ets.prop_write(0, pid::DEVICE_CONTROL, &[DEVICE_CONTROL_VERIFY]);
    let addresses = [0, 2, 0x08, 0x01, 0x08, 0x02];
    let associations = [0, 2, 0, 1, 0, 1, 0, 2, 0, 3];
    let objects = [0, 1, 0x4C, 0x07];
    let parameters: Vec<u8> = (0..25).collect();
    for o in [4, 3, 2, 1] {
        assert_eq!(ets.load_control(o, [4, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 0);
    }
    ets.load(4, &parameters);
    ets.load(3, &objects);
    ets.load(1, &addresses);
    ets.load(2, &associations);
    ets.prop_write(4, pid::PROG_VERSION, &[0x00, 0xFA, 0xAB, 0xCE, 0x79]);
    for o in [4, 3, 2] {
        ets.complete(o);
    }
    assert!(
        !ets.events()
            .iter()
            .any(|e| matches!(e, DeviceEvent::LoadCompleted(_)))
    );
    ets.complete(1);
    let events = ets.events();
    let Some(DeviceEvent::LoadCompleted(download)) = events.last() else {
        panic!("{events:?}");
    };
    assert_eq!(download.address_table.as_deref(), Some(&addresses[..]));
    assert_eq!(
        download.association_table.as_deref(),
        Some(&associations[..])
    );
    assert_eq!(download.group_object_table.as_deref(), Some(&objects[..]));
    assert_eq!(download.parameters.as_deref(), Some(&parameters[..]));
    assert_eq!(download.application_id, [0x00, 0xFA, 0xAB, 0xCE, 0x79]);
    assert_eq!(ets.prop_read(4, pid::MCB_TABLE)[..4], [0, 0, 0, 25]);
    assert_eq!(ets.prop_read(4, 6), [1]);

    // par: only object 4 again; the links stay.
    let new_parameters = vec![7; 25];
    ets.load(4, &new_parameters);
    ets.complete(4);
    let Some(DeviceEvent::LoadCompleted(download)) = ets.events().pop() else {
        panic!()
    };
    assert_eq!(download.parameters, Some(new_parameters));
    assert_eq!(download.address_table.as_deref(), Some(&addresses[..]));

    // The state survives a restart of the device.
    let restored = Device::new(identity(), ets.device.state().clone());
    assert_eq!(restored.download(), download);
}

#[test]
fn memory_outside_the_segment_is_refused_without_harm() {
    let mut ets = Ets::new();
    ets.connect();
    ets.prop_write(0, pid::DEVICE_CONTROL, &[DEVICE_CONTROL_VERIFY]);
    ets.load(4, &[1, 2, 3, 4]);
    let base = load::MEMORY_BASE;
    for (address, len) in [(base + 2, 4), (base - 1, 1), (0, 3), (0xFFFF, 2)] {
        assert_eq!(
            ets.request(Apdu::MemoryWrite {
                address,
                data: vec![0xEE; len]
            }),
            Some(Apdu::MemoryResponse {
                address,
                data: vec![]
            })
        );
    }
    assert_eq!(
        ets.request(Apdu::MemoryRead {
            count: 4,
            address: base
        }),
        Some(Apdu::MemoryResponse {
            address: base,
            data: vec![1, 2, 3, 4]
        })
    );
    // Without verify mode a write gets no answer at all.
    ets.prop_write(0, pid::DEVICE_CONTROL, &[0]);
    assert_eq!(
        ets.request(Apdu::MemoryWrite {
            address: base,
            data: vec![9]
        }),
        None
    );
}

#[test]
fn master_reset_erase_codes() {
    let mut ets = Ets::new();
    ets.device.set_programming_mode(true);
    ets.broadcast(Apdu::IndividualAddressWrite(NEW));
    ets.connect();
    ets.prop_write(0, pid::DEVICE_CONTROL, &[DEVICE_CONTROL_VERIFY]);
    ets.load(4, &[1, 2]);
    ets.complete(4);
    ets.load(1, &[0, 0]);
    ets.complete(1);
    ets.events();

    assert_eq!(
        ets.request(Apdu::RestartMasterReset {
            erase_code: 9,
            channel: 0
        }),
        Some(Apdu::RestartResponse {
            error_code: 2,
            process_time: 0
        })
    );
    ets.request(Apdu::RestartMasterReset {
        erase_code: 6,
        channel: 0,
    });
    assert_eq!(ets.device.download().address_table, None);
    assert_eq!(ets.device.download().parameters, Some(vec![1, 2]));
    // The response leaves from the address ETS is connected to (`request` checks that it
    // comes on the connection); then the address is 15.15.255 and the connection gone.
    assert_eq!(
        ets.request(Apdu::RestartMasterReset {
            erase_code: 2,
            channel: 0,
        }),
        Some(Apdu::RestartResponse {
            error_code: 0,
            process_time: 0
        })
    );
    assert_eq!(ets.device.address(), IndividualAddress::UNCONFIGURED);
    assert_eq!(ets.device.download().parameters, None);
    assert_eq!(ets.device.poll_timeout(), None);
    assert_eq!(
        ets.events(),
        vec![
            DeviceEvent::MasterReset(EraseCode::ResetLinks),
            DeviceEvent::MasterReset(EraseCode::FactoryReset),
            DeviceEvent::AddressChanged(IndividualAddress::UNCONFIGURED),
            DeviceEvent::Disconnected(ETS),
        ]
    );
}

#[test]
fn restart_ends_programming_mode_and_the_connection() {
    let mut ets = Ets::new();
    ets.device.set_programming_mode(true);
    ets.connect();
    assert_eq!(ets.request(Apdu::Restart), None);
    assert!(!ets.device.programming_mode());
    assert_eq!(ets.device.poll_timeout(), None);
    let events = ets.events();
    assert!(events.contains(&DeviceEvent::Restart), "{events:?}");
}

#[test]
fn connection_times_out_and_a_second_is_refused() {
    let mut ets = Ets::new();
    ets.connect();
    let other = IndividualAddress::from_raw(0x0101);
    let frame = LData::new(
        LDataService::Ind,
        other,
        Destination::Individual(ets.device.address()),
        Tpdu::Connect,
    );
    ets.device.handle_frame(ets.now, &frame);
    let sent = ets.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].destination, Destination::Individual(other));
    assert_eq!(sent[0].tpdu, Tpdu::Disconnect);
    let deadline = ets.device.poll_timeout().unwrap();
    assert_eq!(deadline, ets.now + Duration::from_secs(6));
    ets.device.handle_timeout(deadline);
    assert_eq!(ets.sent()[0].tpdu, Tpdu::Disconnect);
}

#[test]
fn frames_for_others_are_ignored() {
    let mut ets = Ets::new();
    ets.device.set_programming_mode(true);
    let frame = to_device(
        Destination::Group(GroupAddress::from_raw(0x0801)),
        Tpdu::Data(Apdu::IndividualAddressRead),
    );
    ets.device.handle_frame(ets.now, &frame);
    let frame = to_device(
        Destination::Individual(IndividualAddress::from_raw(0x1234)),
        Tpdu::Connect,
    );
    ets.device.handle_frame(ets.now, &frame);
    assert!(ets.sent().is_empty());
    assert_eq!(ets.device.poll_timeout(), None);
}

proptest! {
    /// Any sequence of frames, at any times, to the device or broadcast: no panic, and every
    /// frame the device sends can be emitted.
    #[test]
    fn arbitrary_frames_never_panic(
        frames in proptest::collection::vec(
            (any::<bool>(), any::<u16>(), arb_tpdu(), 0u64..8000),
            0..40,
        ),
        prog in any::<bool>(),
    ) {
        let mut device = Device::new(identity(), DeviceState::default());
        device.set_programming_mode(prog);
        let mut now = Instant::now();
        for (broadcast, source, tpdu, delay) in frames {
            now += Duration::from_millis(delay);
            if device.poll_timeout().is_some_and(|t| t <= now) {
                device.handle_timeout(now);
            }
            let dest = if broadcast {
                BROADCAST
            } else {
                Destination::Individual(device.address())
            };
            let frame = LData::new(
                LDataService::Ind,
                IndividualAddress::from_raw(source),
                dest,
                tpdu,
            );
            device.handle_frame(now, &frame);
            while let Some(out) = device.poll_transmit() {
                prop_assert!(out.tpdu.to_bytes().is_ok(), "{out:?}");
            }
            while device.poll_event().is_some() {}
        }
    }
}

#[test]
fn an_interrupted_download_completes_nothing() {
    let mut ets = Ets::new();
    ets.connect();
    ets.prop_write(0, pid::DEVICE_CONTROL, &[DEVICE_CONTROL_VERIFY]);
    ets.load(4, &[1, 2, 3]);
    ets.complete(4);
    let before = ets.device.state().clone();
    ets.events();
    // The next download stops between Load and LoadCompleted: T_Disconnect.
    ets.load(4, &[9, 9, 9]);
    let to = Destination::Individual(ets.device.address());
    ets.device
        .handle_frame(ets.now, &to_device(to, Tpdu::Disconnect));
    let events = ets.events();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, DeviceEvent::LoadCompleted(_))),
        "{events:?}"
    );
    // What was stored at the last LoadCompleted is still a complete download.
    assert_eq!(before.download().parameters, Some(vec![1, 2, 3]));
    assert_eq!(ets.device.download().parameters, None);
}

/// An M_PropWrite.req body as a KNXnet/IP client sends it (KNX 03.06.03 §4.1.7).
fn m_prop_write(object_type: u16, property_id: u8, start_index: u16, data: &[u8]) -> PropFrame {
    PropFrame {
        object_type,
        instance: 1,
        property_id,
        count: 1,
        start_index,
        data: data.to_vec(),
    }
}

/// cEMI M_PropWrite (device-management connection) is served by the same property table
/// and write path as A_PropertyValue_Write: programming mode on and off, with the event the
/// gateway forwards; the element read back is the positive .con's data.
#[test]
fn local_property_write_switches_programming_mode_like_a_property_value_write() {
    let mut device = Device::new(identity(), DeviceState::default());
    assert_eq!(
        device.local_property_write(&m_prop_write(0, pid::PROG_MODE, 1, &[1])),
        Ok(vec![1])
    );
    assert!(device.programming_mode());
    assert_eq!(
        std::iter::from_fn(|| device.poll_event()).collect::<Vec<_>>(),
        [DeviceEvent::ProgrammingMode(true)]
    );
    assert_eq!(
        device.local_property_write(&m_prop_write(0, pid::PROG_MODE, 1, &[0])),
        Ok(vec![0])
    );
    assert!(!device.programming_mode());
    // The verify-mode bit too, and the application id of object type 3 (index 4).
    assert_eq!(
        device.local_property_write(&m_prop_write(0, pid::DEVICE_CONTROL, 1, &[4])),
        Ok(vec![4])
    );
    assert_eq!(
        device.local_property_write(&m_prop_write(3, pid::PROG_VERSION, 1, &[0, 0xFA, 1, 2, 3])),
        Ok(vec![0, 0xFA, 1, 2, 3])
    );
    // A load control: unload the group address table (type 1) answers its state.
    let mut unload = vec![4];
    unload.resize(10, 0);
    assert_eq!(
        device.local_property_write(&m_prop_write(1, pid::LOAD_STATE_CONTROL, 1, &unload)),
        Ok(vec![0])
    );
}

/// The negative confirmations carry the cEMI error codes (KNX 03.06.03 §4.1.7).
#[test]
fn local_property_write_errors_follow_cemi() {
    let mut device = Device::new(identity(), DeviceState::default());
    let cases: [(PropFrame, PropError); 10] = [
        // The KNXnet/IP parameter object (type 11) only reports the IP settings.
        (
            m_prop_write(11, 60, 1, &[192, 168, 1, 5]),
            PropError::ReadOnly,
        ),
        (m_prop_write(11, 200, 1, &[1]), PropError::VoidDp),
        // Read-only properties of the property table.
        (
            m_prop_write(0, pid::SERIAL_NUMBER, 1, &[0; 6]),
            PropError::ReadOnly,
        ),
        (
            m_prop_write(1, pid::TABLE_REFERENCE, 1, &[0; 4]),
            PropError::ReadOnly,
        ),
        // Unknown property, unknown object type, second instance.
        (m_prop_write(0, 200, 1, &[1]), PropError::VoidDp),
        (m_prop_write(17, pid::PROG_MODE, 1, &[1]), PropError::VoidDp),
        (
            PropFrame {
                instance: 2,
                ..m_prop_write(0, pid::PROG_MODE, 1, &[1])
            },
            PropError::VoidDp,
        ),
        // Start index 0 (the element count) and index 2 do not exist for writing.
        (
            m_prop_write(0, pid::PROG_MODE, 0, &[0, 1]),
            PropError::IndexRange,
        ),
        // A value outside 0/1, and the wrong size.
        (
            m_prop_write(0, pid::PROG_MODE, 1, &[2]),
            PropError::OutOfRange,
        ),
        (
            m_prop_write(0, pid::PROG_MODE, 1, &[1, 1]),
            PropError::TypeConflict,
        ),
    ];
    for (request, error) in cases {
        assert_eq!(
            device.local_property_write(&request),
            Err(error),
            "{request:?}"
        );
    }
    assert!(!device.programming_mode());
    assert_eq!(device.poll_event(), None);
}
