SELECT jobs FROM daily_usage WHERE user_id = $1 AND day = $2
