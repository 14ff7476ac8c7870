// Public surface of the node installer (`tollgate install`).
export * from "./bindir.js";
export * from "./containerd-config.js";
export * from "./errors.js";
export * from "./install.js";
export * from "./restart.js";
