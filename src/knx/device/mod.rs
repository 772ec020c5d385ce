//! The gateway as a KNX device that ETS commissions: mask version 07B0 (System B), sans-IO.
//!
//! This module owns what a KNX device answers to management: the transport layer's one
//! connection ([`transport`]), the management services (individual address in programming
//! mode, serial-number addressing, device descriptor, property value/description, memory with
//! verify mode, authorize, restart and master reset), the interface objects 0–4
//! ([`properties`]) and the load-state machines with their relative memory ([`load`]).
//!
//! Input: L_Data frames addressed to the device's individual address or broadcast, and
//! `now`. Output: L_Data frames to send ([`Device::poll_transmit`]), [`DeviceEvent`]s
//! ([`Device::poll_event`]) and the next deadline ([`Device::poll_timeout`]). It knows nothing
//! of group objects or the gateway's configuration: a completed download is handed up as raw
//! tables ([`Download`]) for the configuration layer to interpret. Everything here is
//! untrusted input: a malformed request gets a negative answer or none, never a panic.
//!
//! Sources: KNX 03.03.04 (transport layer), 03.03.07 (application layer), 03.05.01
//! (resources), 03.05.02 (management procedures) and 03.07.03 (interface objects); the MV-07B0
//! block of `knx_master.xml` for the objects and the load procedures; the device side as
//! thelsing/knx `src/knx/bau_systemB.cpp` answers (see `docs/device-management.md`).

pub mod ip;
pub mod load;
pub mod properties;
pub mod transport;

use std::collections::VecDeque;
use std::time::Instant;

use crate::knx::address::{GroupAddress, IndividualAddress};
use crate::knx::wire::apdu::{Apdu, PropertyDescription, PropertyRef, Tpdu};
use crate::knx::wire::cemi::{Destination, LData, LDataService, PropError, PropFrame};
use load::{LoadOutcome, LoadState, Memory};
use properties::{APPLICATION_OBJECT, OBJECT_TYPES, pid};
use transport::{Transport, TransportOutput};

/// Mask version 07B0: device descriptor type 0 (KNX 03.05.01 §4.1; `knx_master.xml`
/// `MaskVersion Id="MV-07B0" MaskVersion="1968"`).
pub const MASK_VERSION: u16 = 0x07B0;

/// Largest APDU this device accepts and sends (PID_MAX_APDU_LENGTH): the standard TP1 frame.
pub const MAX_APDU_LENGTH: u16 = 15;

/// Bit of PID_DEVICE_CONTROL that switches verify mode on (KNX 03.07.03 §4.2.12).
pub const DEVICE_CONTROL_VERIFY: u8 = 0x04;

/// The fixed identity of the device, as the product database describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// KNX serial number (manufacturer id + 4 bytes).
    pub serial_number: [u8; 6],
    /// Manufacturer id (PID 12).
    pub manufacturer_id: u16,
    /// Order number (PID 15), 10 bytes.
    pub order_info: [u8; 10],
    /// Hardware type (PID 78), 6 bytes.
    pub hardware_type: [u8; 6],
    /// Firmware version (PID 25, PDT_VERSION: 5 bits magic, 5 bits version, 6 bits revision).
    pub firmware_version: [u8; 2],
}

/// The value of property `id` of the device object (index 0, type 0), or `None` if it has no
/// such property. One source for the device stack's A_PropertyValue_Read and the KNXnet/IP
/// server's cEMI M_PropRead (device-management connections).
pub fn device_object_value(
    identity: &Identity,
    programming_mode: bool,
    control: u8,
    id: u8,
) -> Option<Vec<u8>> {
    Some(match id {
        pid::OBJECT_TYPE => OBJECT_TYPES[0].to_be_bytes().to_vec(),
        pid::SERIAL_NUMBER => identity.serial_number.to_vec(),
        pid::MANUFACTURER_ID => identity.manufacturer_id.to_be_bytes().to_vec(),
        pid::DEVICE_CONTROL => vec![control],
        pid::ORDER_INFO => identity.order_info.to_vec(),
        pid::VERSION => identity.firmware_version.to_vec(),
        pid::PROG_MODE => vec![u8::from(programming_mode)],
        pid::MAX_APDU_LENGTH => MAX_APDU_LENGTH.to_be_bytes().to_vec(),
        pid::HARDWARE_TYPE => identity.hardware_type.to_vec(),
        pid::DEVICE_DESCRIPTOR => MASK_VERSION.to_be_bytes().to_vec(),
        _ => return None,
    })
}

/// What ETS can change and the device keeps across restarts (persist it on
/// [`DeviceEvent::LoadCompleted`], [`DeviceEvent::AddressChanged`] and
/// [`DeviceEvent::MasterReset`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceState {
    /// The individual address (15.15.255 when unconfigured).
    pub address: IndividualAddress,
    /// Load states and table memory of objects 1–4.
    pub memory: Memory,
    /// Application id (object 4, PID 13): manufacturer id, application number, version.
    pub application_id: [u8; 5],
}

impl DeviceState {
    /// The loaded tables (what a completed download left).
    pub fn download(&self) -> Download {
        let loaded = |i: u8| {
            self.memory
                .table(i)
                .and_then(|t| t.loaded())
                .map(<[u8]>::to_vec)
        };
        Download {
            address_table: loaded(1),
            association_table: loaded(2),
            group_object_table: loaded(3),
            parameters: loaded(APPLICATION_OBJECT),
            application_id: self.application_id,
        }
    }
}

impl Default for DeviceState {
    fn default() -> Self {
        Self {
            address: IndividualAddress::UNCONFIGURED,
            memory: Memory::default(),
            application_id: [0; 5],
        }
    }
}

/// The tables of a completed download, raw as ETS wrote them (`None` = object not loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// Object 1: `u16 N`, then N group addresses.
    pub address_table: Option<Vec<u8>>,
    /// Object 2: `u16 N`, then N × (TSAP u16, ASAP u16).
    pub association_table: Option<Vec<u8>>,
    /// Object 3: `u16 N`, then N descriptors.
    pub group_object_table: Option<Vec<u8>>,
    /// Object 4: the parameter memory.
    pub parameters: Option<Vec<u8>>,
    /// Object 4 PID 13.
    pub application_id: [u8; 5],
}

/// Master reset erase codes (KNX 03.05.02 §3.7.2, xknx `dm_restart_r_co` `EraseCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraseCode {
    /// 1: confirmed restart, nothing erased.
    ConfirmedRestart,
    /// 2: factory reset: address 15.15.255, everything unloaded.
    FactoryReset,
    /// 3: individual address back to 15.15.255.
    ResetIndividualAddress,
    /// 4: application program unloaded.
    ResetApplicationProgram,
    /// 5: parameters back to their defaults (the application unloaded).
    ResetParameters,
    /// 6: group addresses and links unloaded.
    ResetLinks,
    /// 7: factory reset keeping the individual address.
    FactoryResetWithoutIndividualAddress,
}

impl EraseCode {
    /// The erase code for its byte.
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::ConfirmedRestart,
            2 => Self::FactoryReset,
            3 => Self::ResetIndividualAddress,
            4 => Self::ResetApplicationProgram,
            5 => Self::ResetParameters,
            6 => Self::ResetLinks,
            7 => Self::FactoryResetWithoutIndividualAddress,
            _ => return None,
        })
    }
}

/// What the device tells the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The individual address changed (write in programming mode, serial number, reset).
    AddressChanged(IndividualAddress),
    /// Programming mode switched (by ETS, or ended by an address write or a restart).
    ProgrammingMode(bool),
    /// A download finished: every object that was being loaded is loaded.
    LoadCompleted(Download),
    /// A master reset; the device state already reflects it.
    MasterReset(EraseCode),
    /// A basic restart.
    Restart,
    /// A management connection was opened.
    Connected(IndividualAddress),
    /// The management connection closed.
    Disconnected(IndividualAddress),
}

/// Where an answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Connected,
    Connectionless(IndividualAddress),
}

/// The device: identity, state, transport and the queued output.
#[derive(Debug, Clone)]
pub struct Device {
    identity: Identity,
    state: DeviceState,
    programming_mode: bool,
    control: u8,
    transport: Transport,
    transmit: VecDeque<LData>,
    events: VecDeque<DeviceEvent>,
    /// An address a master reset gives once its response has left.
    address_after_reply: Option<IndividualAddress>,
}

const BROADCAST: Destination = Destination::Group(GroupAddress::from_raw(0));

impl Device {
    /// A device with a stored state (or [`DeviceState::default`] for a new one).
    pub fn new(identity: Identity, state: DeviceState) -> Self {
        Self {
            identity,
            state,
            programming_mode: false,
            control: 0,
            transport: Transport::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            address_after_reply: None,
        }
    }

    /// The individual address.
    pub fn address(&self) -> IndividualAddress {
        self.state.address
    }

    /// The state to persist.
    pub fn state(&self) -> &DeviceState {
        &self.state
    }

    /// Whether programming mode is on.
    pub fn programming_mode(&self) -> bool {
        self.programming_mode
    }

    /// Switches programming mode (button, website); reports a change as an event.
    pub fn set_programming_mode(&mut self, on: bool) {
        if self.programming_mode != on {
            self.programming_mode = on;
            self.events.push_back(DeviceEvent::ProgrammingMode(on));
        }
    }

    /// The loaded tables as they stand.
    pub fn download(&self) -> Download {
        self.state.download()
    }

    /// Whether a frame is for the device stack: point-to-point to its address, or a
    /// broadcast (group address 0/0/0).
    pub fn accepts(&self, frame: &LData) -> bool {
        frame.service != LDataService::Con
            && match frame.destination {
                Destination::Individual(ia) => ia == self.state.address,
                Destination::Group(ga) => ga.raw() == 0,
            }
    }

    /// Handles a received frame; frames [`Device::accepts`] refuses are ignored.
    pub fn handle_frame(&mut self, now: Instant, frame: &LData) {
        if !self.accepts(frame) {
            return;
        }
        let source = frame.source;
        match (&frame.destination, &frame.tpdu) {
            (Destination::Group(_), Tpdu::Data(apdu)) => self.broadcast(apdu),
            (Destination::Individual(_), Tpdu::Data(apdu)) => {
                self.management(now, Reply::Connectionless(source), apdu);
            }
            (Destination::Individual(_), tpdu) => {
                self.transport.handle(now, source, tpdu);
            }
            _ => {}
        }
        self.pump(now);
    }

    /// Runs the transport timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.transport.handle_timeout(now);
        self.pump(now);
    }

    /// When [`Device::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.transport.poll_timeout()
    }

    /// The next frame to send (an L_Data.req from the device's address).
    pub fn poll_transmit(&mut self) -> Option<LData> {
        self.transmit.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<DeviceEvent> {
        self.events.pop_front()
    }

    fn send(&mut self, destination: Destination, tpdu: Tpdu) {
        self.transmit.push_back(LData::new(
            LDataService::Req,
            self.state.address,
            destination,
            tpdu,
        ));
    }

    fn pump(&mut self, now: Instant) {
        while let Some(out) = self.transport.poll() {
            match out {
                TransportOutput::Send(to, tpdu) => self.send(Destination::Individual(to), tpdu),
                TransportOutput::Deliver(_, apdu) => self.management(now, Reply::Connected, &apdu),
                TransportOutput::Opened(ia) => self.events.push_back(DeviceEvent::Connected(ia)),
                TransportOutput::Closed(ia) => {
                    self.events.push_back(DeviceEvent::Disconnected(ia));
                }
            }
        }
        if let Some(address) = self.address_after_reply.take() {
            self.set_address(address);
            // The connection was to the old address; the device restarts without it.
            self.transport.drop_connection();
            while let Some(out) = self.transport.poll() {
                if let TransportOutput::Closed(ia) = out {
                    self.events.push_back(DeviceEvent::Disconnected(ia));
                }
            }
        }
    }

    fn reply(&mut self, now: Instant, to: Reply, apdu: Apdu) {
        match to {
            Reply::Connected => {
                self.transport.send(now, apdu);
            }
            Reply::Connectionless(ia) => self.send(Destination::Individual(ia), Tpdu::Data(apdu)),
        }
    }

    fn set_address(&mut self, address: IndividualAddress) {
        if self.state.address != address {
            self.state.address = address;
            self.events.push_back(DeviceEvent::AddressChanged(address));
        }
    }

    fn broadcast(&mut self, apdu: &Apdu) {
        match apdu {
            Apdu::IndividualAddressRead if self.programming_mode => {
                self.send(BROADCAST, Tpdu::Data(Apdu::IndividualAddressResponse));
            }
            Apdu::IndividualAddressWrite(address) if self.programming_mode => {
                self.set_address(*address);
                self.set_programming_mode(false);
            }
            Apdu::IndividualAddressSerialNumberRead { serial_number }
                if *serial_number == self.identity.serial_number =>
            {
                self.send(
                    BROADCAST,
                    Tpdu::Data(Apdu::IndividualAddressSerialNumberResponse {
                        serial_number: *serial_number,
                        domain_address: 0,
                    }),
                );
            }
            Apdu::IndividualAddressSerialNumberWrite {
                serial_number,
                address,
            } if *serial_number == self.identity.serial_number => self.set_address(*address),
            _ => {}
        }
    }

    fn management(&mut self, now: Instant, to: Reply, apdu: &Apdu) {
        let connected = to == Reply::Connected;
        let answer = match apdu {
            Apdu::DeviceDescriptorRead { descriptor_type: 0 } => {
                Some(Apdu::DeviceDescriptorResponse {
                    descriptor_type: 0,
                    data: MASK_VERSION.to_be_bytes().to_vec(),
                })
            }
            Apdu::DeviceDescriptorRead { .. } => Some(Apdu::DeviceDescriptorResponse {
                descriptor_type: 0x3F,
                data: Vec::new(),
            }),
            Apdu::AuthorizeRequest { .. } => Some(Apdu::AuthorizeResponse { level: 0 }),
            Apdu::KeyWrite { .. } => Some(Apdu::KeyResponse { level: 0xFF }),
            Apdu::PropertyValueRead(p) => Some(self.property_read(*p)),
            Apdu::PropertyValueWrite(p, data) => Some(self.property_write(*p, data)),
            Apdu::PropertyDescriptionRead {
                object_index,
                property_id,
                property_index,
            } => Some(Self::property_description(
                *object_index,
                *property_id,
                *property_index,
            )),
            Apdu::MemoryRead { count, address } if connected => {
                let data = self
                    .state
                    .memory
                    .read(*address, usize::from(*count))
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default();
                Some(Apdu::MemoryResponse {
                    address: *address,
                    data,
                })
            }
            Apdu::MemoryWrite { address, data } if connected => {
                let written = self.state.memory.write(*address, data).is_ok();
                (self.control & DEVICE_CONTROL_VERIFY != 0).then(|| Apdu::MemoryResponse {
                    address: *address,
                    data: if written { data.clone() } else { Vec::new() },
                })
            }
            Apdu::Restart => {
                self.set_programming_mode(false);
                self.transport.drop_connection();
                self.events.push_back(DeviceEvent::Restart);
                None
            }
            Apdu::RestartMasterReset { erase_code, .. } => Some(self.master_reset(*erase_code)),
            _ => None,
        };
        if let Some(answer) = answer {
            self.reply(now, to, answer);
        }
    }

    fn master_reset(&mut self, code: u8) -> Apdu {
        let Some(erase) = EraseCode::from_code(code) else {
            // 2 = unsupported erase code (KNX 03.03.07 §3.7.1.3).
            return Apdu::RestartResponse {
                error_code: 2,
                process_time: 0,
            };
        };
        let memory = &mut self.state.memory;
        match erase {
            EraseCode::ConfirmedRestart | EraseCode::ResetIndividualAddress => {}
            EraseCode::FactoryReset | EraseCode::FactoryResetWithoutIndividualAddress => {
                for i in 1..=APPLICATION_OBJECT {
                    memory.unload(i);
                }
                self.state.application_id = [0; 5];
            }
            EraseCode::ResetApplicationProgram | EraseCode::ResetParameters => {
                memory.unload(APPLICATION_OBJECT);
                self.state.application_id = [0; 5];
            }
            EraseCode::ResetLinks => {
                memory.unload(1);
                memory.unload(2);
            }
        }
        if matches!(
            erase,
            EraseCode::FactoryReset | EraseCode::ResetIndividualAddress
        ) {
            // The response still comes from the address ETS is connected to.
            self.address_after_reply = Some(IndividualAddress::UNCONFIGURED);
        }
        self.set_programming_mode(false);
        self.events.push_back(DeviceEvent::MasterReset(erase));
        Apdu::RestartResponse {
            error_code: 0,
            process_time: 0,
        }
    }

    /// The value of one element of a property, or `None` if it does not exist.
    fn property_value(&self, object: u8, id: u8) -> Option<Vec<u8>> {
        let id_ = &self.identity;
        let object_type = OBJECT_TYPES.get(usize::from(object))?;
        if id == pid::OBJECT_TYPE {
            return Some(object_type.to_be_bytes().to_vec());
        }
        if object == 0 {
            return device_object_value(id_, self.programming_mode, self.control, id);
        }
        let table = self.state.memory.table(object)?;
        Some(match id {
            pid::LOAD_STATE_CONTROL => vec![table.state.code()],
            pid::TABLE_REFERENCE => table.table_reference().to_be_bytes().to_vec(),
            pid::MCB_TABLE => table.mcb()?.to_vec(),
            pid::ERROR_CODE => vec![table.error_code],
            pid::RUN_STATE_CONTROL if object == APPLICATION_OBJECT => {
                // 1 = running, 0 = halted (KNX 03.05.01 §4.20).
                vec![u8::from(table.state == LoadState::Loaded)]
            }
            pid::PROG_VERSION if object == APPLICATION_OBJECT => self.state.application_id.to_vec(),
            _ => return None,
        })
    }

    fn property_read(&self, p: PropertyRef) -> Apdu {
        let error = Apdu::PropertyValueResponse(PropertyRef { count: 0, ..p }, Vec::new());
        if properties::find(p.object_index, p.property_id).is_none() {
            return error;
        }
        let Some(value) = self.property_value(p.object_index, p.property_id) else {
            return error;
        };
        match (p.start_index, p.count) {
            // Start index 0 reads the current number of elements (always 1 here).
            (0, 1) => Apdu::PropertyValueResponse(p, 1u16.to_be_bytes().to_vec()),
            (1, 1) => Apdu::PropertyValueResponse(p, value),
            _ => error,
        }
    }

    fn property_write(&mut self, p: PropertyRef, data: &[u8]) -> Apdu {
        match self.write_element(p.object_index, p.property_id, p.start_index, p.count, data) {
            Ok(()) => self.property_read(p),
            Err(_) => Apdu::PropertyValueResponse(PropertyRef { count: 0, ..p }, Vec::new()),
        }
    }

    /// Writes one element of a property: the one place that decides what may be written
    /// and how, for A_PropertyValue_Write (object index) and cEMI M_PropWrite (object type,
    /// [`Device::local_property_write`]). The error is the cEMI one (KNX 03.06.03 §4.1.7);
    /// A_PropertyValue_Response can only say "0 elements".
    fn write_element(
        &mut self,
        object: u8,
        id: u8,
        start_index: u16,
        count: u8,
        data: &[u8],
    ) -> Result<(), PropError> {
        let (_, info) = properties::find(object, id).ok_or(PropError::VoidDp)?;
        if !info.writable {
            return Err(PropError::ReadOnly);
        }
        if start_index != 1 || count != 1 {
            return Err(PropError::IndexRange);
        }
        match (object, id) {
            (0, pid::PROG_MODE) => match data {
                // Bit 0 is programming mode; a value with other bits set is refused.
                [b @ (0 | 1)] => self.set_programming_mode(*b == 1),
                [_] => return Err(PropError::OutOfRange),
                _ => return Err(PropError::TypeConflict),
            },
            (0, pid::DEVICE_CONTROL) => match data {
                [b] => self.control = *b,
                _ => return Err(PropError::TypeConflict),
            },
            (APPLICATION_OBJECT, pid::PROG_VERSION) => match <[u8; 5]>::try_from(data) {
                Ok(id) => self.state.application_id = id,
                Err(_) => return Err(PropError::TypeConflict),
            },
            (object, pid::LOAD_STATE_CONTROL) => {
                if self.state.memory.load_control(object, data) == LoadOutcome::Completed
                    && !self
                        .state
                        .memory
                        .tables
                        .iter()
                        .any(|t| t.state == LoadState::Loading)
                {
                    self.events
                        .push_back(DeviceEvent::LoadCompleted(self.download()));
                }
            }
            _ => return Err(PropError::ReadOnly),
        }
        Ok(())
    }

    /// The object index of interface object `object_type`, instance `instance` (each type
    /// exists once here, as instance 1).
    fn object_index(object_type: u16, instance: u8) -> Result<u8, PropError> {
        let index = OBJECT_TYPES
            .iter()
            .position(|t| *t == object_type)
            .filter(|_| instance == 1)
            .ok_or(PropError::VoidDp)?;
        u8::try_from(index).map_err(|_| PropError::VoidDp)
    }

    /// cEMI local device management, M_PropWrite.req (KNX 03.06.03 §4.1.7; a KNXnet/IP
    /// device-management connection to the built-in server): the object addressed by type
    /// and instance, written as an A_PropertyValue_Write to it would be
    /// (`write_element`), with the same events (programming mode, a completed
    /// download). Returns the element as it reads back after the write (the positive
    /// M_PropWrite.con itself carries no data) or the error of the negative one.
    pub fn local_property_write(&mut self, request: &PropFrame) -> Result<Vec<u8>, PropError> {
        if request.object_type == properties::KNXIP_PARAMETER_TYPE && request.instance == 1 {
            // The IP settings come with the parameters of a download (spec 8.3.2) and apply
            // at the next start; this object only reports them (`ip`).
            return Err(match properties::knxip_find(request.property_id) {
                Some(_) => PropError::ReadOnly,
                None => PropError::VoidDp,
            });
        }
        let object = Self::object_index(request.object_type, request.instance)?;
        self.write_element(
            object,
            request.property_id,
            request.start_index,
            request.count,
            &request.data,
        )?;
        self.property_value(object, request.property_id)
            .ok_or(PropError::Unspecified)
    }

    fn property_description(object: u8, id: u8, index: u8) -> Apdu {
        let found = if id == 0 {
            properties::properties(object)
                .get(usize::from(index))
                .map(|info| (index, *info))
        } else {
            properties::find(object, id)
        };
        let description = match found {
            Some((index, info)) => PropertyDescription {
                object_index: object,
                property_id: info.id,
                property_index: index,
                write_enable: info.writable,
                property_type: info.pdt,
                max_elements: 1,
                read_level: 3,
                write_level: if info.writable { 3 } else { 0 },
            },
            None => PropertyDescription {
                object_index: object,
                property_id: id,
                property_index: index,
                write_enable: false,
                property_type: 0,
                max_elements: 0,
                read_level: 0,
                write_level: 0,
            },
        };
        Apdu::PropertyDescriptionResponse(description)
    }
}

#[cfg(test)]
mod tests;
