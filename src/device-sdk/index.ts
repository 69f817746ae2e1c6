export {
  DeviceClient,
  MemoryExecutionStore,
  type CommandHandler,
  type CommandOutcome,
  type DeviceClientEvents,
  type DeviceClientOptions,
  type DeviceCommand,
  type DeviceError,
  type DeviceReply,
  type ExecutionOutcome,
  type ExecutionStore,
} from "./device-client";
export { createSimulatedDevice, SimulatedModel, type SimulatedDeviceOptions, type SimulationOptions } from "./simulated-device";
