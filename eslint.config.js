// ESLint flat config. The restricted-imports block keeps the contract (protocols/) and the pure cores free of I/O,
// as ARCHITECTURE.md §5 asks: a decision that can touch a socket or a file is not a pure decision.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const ioImports = {
  patterns: [
    { group: ["node:*"], message: "protocols/ and pure cores do no I/O: take it through deps." },
    { group: ["fs", "net", "dgram", "child_process", "http", "https", "os", "path", "tls", "worker_threads", "timers"],
      message: "protocols/ and pure cores do no I/O." },
    // A regex, not a gitignore-style group: "mqtt/*" as a group would also match our own ../protocols/mqtt/ files.
    { regex: "^(mqtt|aedes|modbus-serial|serialport|better-sqlite3|pg|influx|fastify|pino)(/.*)?$|^@(serialport|influxdata)/",
      message: "protocols/ and pure cores do no I/O: drivers, brokers and loggers belong to the shell." },
  ],
};

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "bench/results/**", "coverage/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ["*.js"] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true, allowBoolean: true }],
      eqeqeq: "error",
    },
  },
  {
    files: [
      "protocols/**/*.ts",
      "edge/guards/**/*.ts",
      "edge/modbus/read-planner.ts",
      "edge/modbus/schedule.ts",
      "edge/modbus/bus-budget.ts",
      "edge/agent/energy-check.ts",
      "edge/agent/commands.ts",
      "cloud/ingest/route.ts",
      "cloud/prepaid/next-grant.ts",
      "cloud/api/routes/daily-energy.ts",
      "cloud/prepaid/village-policy.ts",
      "cloud/auth/principal.ts",
      "cloud/auth/login-rate-limit.ts",
      "cloud/auth/password-rules.ts",
      "cloud/auth/session-cookie.ts",
      "cloud/auth/user-schema.ts",
      "cloud/auth/{auth-store,auth-changes}.ts",
      "cloud/audit/{audit-log,errors}.ts",
      "firmware-sim/models/**/*.ts",
      "firmware-sim/modbus/pdu*.ts",
      "firmware-sim/modbus/faults.ts",
      "cloud/broker/policy.ts",
      "cloud/broker/mqtt-frame-scanner.ts",
      "cloud/broker/connect-rate-limit.ts",
      "cloud/ledger/errors.ts",
      "cloud/ledger/tariff.ts",
      "cloud/ledger/charge-inputs.ts",
      "cloud/ledger/charges.ts",
      "cloud/ledger/grants.ts",
      "cloud/ledger/store/ledger.ts",
      "cloud/ledger/store/charge-entries.ts",
      "cloud/ledger/store/store-errors.ts",
      "cloud/subsidy/{settle,policy,workflow,notice,local-day,errors,meter-flags-rows}.ts",
      "cloud/payments/{errors,payments-input}.ts",
      "cloud/alerts/types.ts",
      "cloud/alerts/incident-step.ts",
      "cloud/alerts/clustering.ts",
      "cloud/alerts/escalation.ts",
      "cloud/alerts/mutes.ts",
      "cloud/alerts/metrics.ts",
      "cloud/alerts/cap.ts",
      "cloud/alerts/sse-frame.ts",
      "cloud/alerts/webhook-backoff.ts",
      "cloud/schema-migrations.ts",
      "cloud/registry/registry-input.ts",
    ],
    ignores: ["**/*.test.ts", "protocols/docs/**"],
    rules: { "no-restricted-imports": ["error", ioImports] },
  },
  { files: ["eslint.config.js"], ...tseslint.configs.disableTypeChecked },
  // The web console's browser modules: plain JS served as it is (no build step), typed with JSDoc and type-checked
  // by cloud/web/tsconfig.web.json (DOM lib), so here they are linted without type information; tsc reports
  // undefined names, hence no-undef off.
  { files: ["cloud/web/static/**/*.js"], ...tseslint.configs.disableTypeChecked, rules: { ...tseslint.configs.disableTypeChecked.rules, "no-undef": "off" } },
);
