export type { Job, JobState } from './job.js';
export { FINISHED_STATES, isFinished } from './job.js';
export { JobManager, DAEMON_STOPPED_REASON } from './job-manager.js';
export type { JobEvents, JobManagerOptions, JobWork } from './job-manager.js';
