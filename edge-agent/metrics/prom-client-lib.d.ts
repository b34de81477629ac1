// Types for the prom-client files edge-agent/metrics/prom.ts loads one by one (the package only
// declares its index); prom.ts gives each the index's type.
declare module "prom-client/lib/*.js" {
  const value: unknown;
  export default value;
}
