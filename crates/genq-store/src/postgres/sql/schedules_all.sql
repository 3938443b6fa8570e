SELECT name, paused, covered_until, last_slot, last_job_id, last_error FROM schedules ORDER BY name
