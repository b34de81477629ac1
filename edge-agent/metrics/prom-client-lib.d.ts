// Types for the prom-client files edge-agent/metrics/prom.ts loads one by one (the package only
// declares its index); prom.ts gives each the index's type.
declare module "prom-client/lib/registry.js" {
  const value: unknown;
  export default value;
}
declare module "prom-client/lib/counter.js" {
  const value: unknown;
  export default value;
}
declare module "prom-client/lib/gauge.js" {
  const value: unknown;
  export default value;
}
declare module "prom-client/lib/histogram.js" {
  const value: unknown;
  export default value;
}
