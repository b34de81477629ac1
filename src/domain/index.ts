export * from "./client.js";
export * from "./command.js";
export * from "./common.js";
export * from "./event.js";
export * from "./host.js";
export * from "./result.js";
export * from "./service.js";
export * from "./session.js";
