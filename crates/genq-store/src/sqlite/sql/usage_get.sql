SELECT jobs FROM daily_usage WHERE user_id = :user_id AND day = :day
